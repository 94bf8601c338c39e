import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ZuoraCode, ZuoraError, reasonsFromSchema, zuoraFailure, type SchemaIssue } from '../errors.js';
import { fingerprintJson, type ZuoraAnswer } from '../idempotency.js';
import type { Account, Contact } from '../model.js';
import { AccountKeyParams, CreateAccountBody, type ContactBody } from '../schemas.js';
import type { SandboxServices } from '../services.js';
import { newZuoraId, type SandboxState } from '../state.js';

function contactFrom(body: ContactBody): Contact {
  return { ...body, id: newZuoraId() };
}

/**
 * Zuora answers a rejected account with HTTP 200 and `success: false`, so a client that only looks
 * at the status code thinks it created the account. The sandbox keeps that trap.
 */
function rejected(...reasons: Parameters<typeof zuoraFailure>): ZuoraAnswer {
  return { statusCode: 200, body: zuoraFailure(...reasons) };
}

function createAccount(state: SandboxState, body: CreateAccountBody): ZuoraAnswer {
  if (body.accountNumber !== undefined && state.findAccountByNumber(body.accountNumber)) {
    return rejected({ code: ZuoraCode.ruleRestriction, message: `The account number ${body.accountNumber} is already in use` });
  }
  if (body.autoPay === true && body.paymentMethod === undefined) {
    return rejected({ code: ZuoraCode.missingRequiredField, message: "'paymentMethod' is required when 'autoPay' is true" });
  }
  const billToContact = contactFrom(body.billToContact);
  const account = state.createAccount({
    name: body.name,
    currency: body.currency,
    billCycleDay: body.billCycleDay,
    autoPay: body.autoPay ?? false,
    paymentTerm: body.paymentTerm ?? 'Due Upon Receipt',
    batch: body.batch ?? 'Batch1',
    notes: body.notes,
    crmId: body.crmId,
    accountNumber: body.accountNumber,
    billToContact,
    // Zuora uses the bill-to contact as sold-to when none is given.
    soldToContact: body.soldToContact ? contactFrom(body.soldToContact) : { ...billToContact, id: newZuoraId() },
    paymentMethod: body.paymentMethod ? { id: newZuoraId(), type: body.paymentMethod.type } : undefined,
  });
  return {
    statusCode: 200,
    body: {
      success: true,
      accountId: account.id,
      accountNumber: account.accountNumber,
      billToContactId: account.billToContact.id,
      soldToContactId: account.soldToContact.id,
      ...(account.paymentMethod ? { paymentMethodId: account.paymentMethod.id } : {}),
    },
  };
}

/** `GET /v1/accounts/{account-key}`, the parts of Zuora's answer the sandbox has data for. */
export function accountView(account: Account) {
  return {
    success: true,
    basicInfo: {
      id: account.id,
      accountNumber: account.accountNumber,
      name: account.name,
      status: account.status,
      currency: account.currency,
      billCycleDay: account.billCycleDay,
      batch: account.batch,
      notes: account.notes ?? '',
      crmId: account.crmId ?? '',
    },
    billingAndPayment: {
      billCycleDay: account.billCycleDay,
      currency: account.currency,
      paymentTerm: account.paymentTerm,
      autoPay: account.autoPay,
      defaultPaymentMethodId: account.paymentMethod?.id ?? null,
    },
    // No invoices or payments exist in the sandbox, so every balance is zero.
    metrics: { balance: 0, totalInvoiceBalance: 0, creditBalance: 0, contractedMrr: 0 },
    billToContact: account.billToContact,
    soldToContact: account.soldToContact,
  };
}

export function accountNotFound(accountKey: string): ZuoraError {
  return new ZuoraError(404, ZuoraCode.notFound, `Cannot find entity by key: '${accountKey}'.`);
}

export const accountRoutes: FastifyPluginAsyncTypebox<SandboxServices> = async (app, { state, idempotency }) => {
  app.post('/accounts', { schema: { body: CreateAccountBody }, attachValidation: true }, async (request, reply) =>
    idempotency.answer(request, reply, fingerprintJson(request.body), () => {
      const issues = request.validationError?.validation as SchemaIssue[] | undefined;
      if (issues) return rejected(...reasonsFromSchema(issues));
      return createAccount(state, request.body);
    }),
  );

  app.get('/accounts/:accountKey', { schema: { params: AccountKeyParams } }, async (request) => {
    const account = state.findAccount(request.params.accountKey);
    if (!account) throw accountNotFound(request.params.accountKey);
    return accountView(account);
  });
};
