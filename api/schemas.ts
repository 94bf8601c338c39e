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
