import { Type } from '@sinclair/typebox';

/** Zuora-like error body every failing route answers with: a code to branch on, a message to act on. */
export const ErrorBody = Type.Object(
  {
    code: Type.String(),
    message: Type.String(),
    field: Type.Optional(Type.String()),
  },
  { $id: 'Error' },
);

export const BillingDayParam = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$', description: 'UTC day, YYYY-MM-DD' });

export const WorkflowStarted = Type.Object({
  workflowId: Type.String(),
  runId: Type.String(),
  temporalUrl: Type.String({ description: 'The workflow in the Temporal UI' }),
  result: Type.Optional(Type.Unknown({ description: 'The workflow result, when ?wait=true' })),
});

/** `:orgId` of the billing API's /v1/organisations/:orgId/* routes. */
export const OrgIdParams = Type.Object({ orgId: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._-]+$' }) });

/** A decimal integer quantity: never a JSON number, so no client parses it into floating point. */
export const Quantity = Type.String({ pattern: '^\\d+$', description: 'Decimal integer string: quantities never pass through floating point' });

/**
 * A string that is one of `values`, as a JSON schema `enum`. Use it rather than a union of
 * literals in responses: for a union (anyOf) the response serializer runs a schema validator on
 * every value to pick the branch, which for a list of results is once per item.
 */
export function StringEnum<T extends string>(values: readonly T[], options: { description?: string } = {}) {
  return Type.Unsafe<T>({ type: 'string', enum: [...values], ...options });
}
