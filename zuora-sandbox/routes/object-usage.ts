import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { crudFailure, fieldOf, firstIssuePerField, isMissing, type CrudFailureBody, type SchemaIssue } from '../errors.js';
import { fingerprintJson, type ZuoraAnswer } from '../idempotency.js';
import type { Account, UsageWrite } from '../model.js';
import { CreateUsageObjectBody } from '../schemas.js';
import type { SandboxServices } from '../services.js';
import type { SandboxState } from '../state.js';
import { isoToZuora, quantityFromJson } from '../usage-values.js';

/** CRUD failures are HTTP 400 with `{ Success: false, Errors: [{ Code, Message }] }`. */
function invalid(body: CrudFailureBody): ZuoraAnswer {
  return { statusCode: 400, body };
}

function fromSchema(issues: readonly SchemaIssue[]): ZuoraAnswer {
  const [issue] = firstIssuePerField(issues);
  if (!issue) return invalid(crudFailure('INVALID_VALUE', 'The request body is invalid'));
  const field = fieldOf(issue);
  return isMissing(issue)
    ? invalid(crudFailure('MISSING_REQUIRED_VALUE', `Missing required value: ${field}`))
    : invalid(crudFailure('INVALID_VALUE', `Invalid value for field ${field}: ${issue.message}`));
}

function resolveAccount(state: SandboxState, body: CreateUsageObjectBody): Account | ZuoraAnswer {
  if (body.AccountId === undefined && body.AccountNumber === undefined) {
    return invalid(crudFailure('MISSING_REQUIRED_VALUE', 'Missing required value: AccountId or AccountNumber'));
  }
  const byId = body.AccountId === undefined ? undefined : state.findAccount(body.AccountId);
  if (body.AccountId !== undefined && byId?.id !== body.AccountId) {
    return invalid(crudFailure('INVALID_VALUE', `The account id ${body.AccountId} is invalid.`));
  }
  const byNumber = body.AccountNumber === undefined ? undefined : state.findAccountByNumber(body.AccountNumber);
  if (body.AccountNumber !== undefined && !byNumber) {
    return invalid(crudFailure('INVALID_VALUE', `The account number ${body.AccountNumber} is invalid.`));
  }
  if (byId && byNumber && byId.id !== byNumber.id) {
    return invalid(crudFailure('INVALID_VALUE', `AccountId ${body.AccountId} and AccountNumber ${body.AccountNumber} are different accounts`));
  }
  return (byId ?? byNumber) as Account;
}

function createUsage(state: SandboxState, body: CreateUsageObjectBody): ZuoraAnswer {
  const account = resolveAccount(state, body);
  if (!('id' in account)) return account;
  if (!('Quantity' in body) || body.Quantity === null) return invalid(crudFailure('MISSING_REQUIRED_VALUE', 'Missing required value: Quantity'));
  const quantity = quantityFromJson(body.Quantity);
  if (quantity === undefined) {
    return invalid(crudFailure('INVALID_VALUE', `Invalid value for field Quantity: ${JSON.stringify(body.Quantity)} is not an exact decimal of 0 or more (send large numbers as strings)`));
  }
  const startDateTime = isoToZuora(body.StartDateTime);
  if (startDateTime === undefined) return invalid(crudFailure('INVALID_VALUE', `Invalid value for field StartDateTime: '${body.StartDateTime}'`));
  const endDateTime = body.EndDateTime === undefined ? undefined : isoToZuora(body.EndDateTime);
  if (body.EndDateTime !== undefined && endDateTime === undefined) {
    return invalid(crudFailure('INVALID_VALUE', `Invalid value for field EndDateTime: '${body.EndDateTime}'`));
  }

  const write: UsageWrite = {
    account,
    unitOfMeasure: body.UOM,
    quantity,
    startDateTime,
    endDateTime,
    subscriptionNumber: body.SubscriptionNumber || undefined,
    chargeNumber: body.ChargeNumber || undefined,
    description: body.Description || undefined,
    uniqueKey: body.UniqueKey,
  };
  const conflict = state.findUniqueKeyConflict([write]);
  if (conflict) return invalid(crudFailure('DUPLICATE_VALUE', conflict.message.replace('UNIQUE_KEY', 'UniqueKey')));

  const outcome = state.writeUsage([write], { sourceName: 'API', status: 'Pending' });
  // An identical keyed record is ignored, and Zuora still answers with the existing record's id.
  const id = outcome.recordIds[0] ?? (write.uniqueKey !== undefined ? state.findUsageByUniqueKey(write.uniqueKey)?.id : undefined);
  return { statusCode: 200, body: { Success: true, Id: id } };
}

export const objectUsageRoutes: FastifyPluginAsyncTypebox<SandboxServices> = async (app, { state, idempotency }) => {
  app.post('/object/usage', { schema: { body: CreateUsageObjectBody }, attachValidation: true }, async (request, reply) =>
    idempotency.answer(request, reply, fingerprintJson(request.body), () => {
      const issues = request.validationError?.validation as SchemaIssue[] | undefined;
      if (issues) return fromSchema(issues);
      return createUsage(state, request.body);
    }),
  );
};
