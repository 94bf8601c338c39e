import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { WorkflowFailedError, WorkflowIdConflictPolicy } from '@temporalio/client';
import { isBillingDay, type BillingDay } from '../../core/billing-day.js';
import { workflowUrl } from '../../core/temporal-links.js';
import { billingDaySearchAttribute } from '../../workflows/search-attributes.js';
import { aggregateDayWorkflow } from '../../workflows/aggregate.js';
import { uploadDayWorkflow } from '../../workflows/upload.js';
import { reconcileDayWorkflow } from '../../workflows/reconcile.js';
import { Organisation, RegistrationFields, registerOrganisation } from '../organisations.js';
import { BillingDayParam, ErrorBody, WorkflowStarted } from '../schemas.js';

/** Operator endpoints: register organisations, run a day's aggregation or upload through Temporal. */
export const adminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, temporal } = app.deps;

  app.post('/admin/organisations', {
    schema: {
      summary: 'Register an organisation and its Zuora account',
      description: 'Idempotent: registering the same organisation again returns it (and creates its Zuora account if an earlier try did not).',
      tags: ['admin'],
      body: Type.Object({
        id: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._-]+$' }),
        ...RegistrationFields,
      }),
      response: { 200: Organisation, 409: ErrorBody },
    },
  }, async (req, reply) => {
    const registered = await registerOrganisation(app.deps, req.body);
    if (!registered.ok) return reply.code(409).send({ code: registered.code, field: registered.field, message: registered.message });
    return registered.organisation;
  });

  const dayWorkflows = [
    { path: '/admin/aggregations', prefix: 'aggregate', workflow: aggregateDayWorkflow, summary: "Recompute a day's usage from BigQuery into Postgres" },
    { path: '/admin/uploads', prefix: 'upload', workflow: uploadDayWorkflow, summary: "Upload a day's usage to Zuora" },
    { path: '/admin/reconciliations', prefix: 'reconcile', workflow: reconcileDayWorkflow, summary: "Compare a day's usage, upload ledger and Zuora's records" },
  ] as const;
  for (const { path, prefix, workflow, summary } of dayWorkflows) {
    app.post(path, {
      schema: {
        summary,
        description: `Starts ${prefix}-<day> (or joins the run already going) and answers with its link in the Temporal UI; ?wait=true waits for its result.`,
        tags: ['admin'],
        body: Type.Object({ day: BillingDayParam }),
        querystring: Type.Object({ wait: Type.Boolean({ default: false }) }),
        response: { 202: WorkflowStarted, 200: WorkflowStarted, 400: ErrorBody, 409: ErrorBody },
      },
    }, async (req, reply) => {
      const { day } = req.body;
      if (!isBillingDay(day)) return reply.code(400).send({ code: 'INVALID_DAY', field: 'day', message: `not a calendar day: ${day}` });
      const workflowId = `${prefix}-${day}`;
      const handle = await temporal.workflow.start(workflow as typeof aggregateDayWorkflow, {
        workflowId,
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        args: [day as BillingDay],
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
        typedSearchAttributes: [billingDaySearchAttribute(day as BillingDay)],
      });
      const started = {
        workflowId,
        runId: handle.firstExecutionRunId,
        temporalUrl: workflowUrl(config.TEMPORAL_UI_URL, config.TEMPORAL_NAMESPACE, workflowId),
      };
      if (!req.query.wait) return reply.code(202).send(started);
      try {
        return reply.code(200).send({ ...started, result: await handle.result() });
      } catch (err) {
        if (!(err instanceof WorkflowFailedError)) throw err;
        // The workflow said no (a day still open, Zuora refusing an import): its reason, and where to look.
        const cause = err.cause as { type?: string; message?: string; cause?: { type?: string; message?: string } } | undefined;
        const reason = cause?.cause ?? cause;
        return reply.code(409).send({
          code: reason?.type ?? 'WORKFLOW_FAILED',
          message: `${workflowId} failed: ${reason?.message ?? err.message} (${started.temporalUrl})`,
        });
      }
    });
  }
};
