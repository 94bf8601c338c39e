import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { WorkflowIdConflictPolicy } from '@temporalio/client';
import { isBillingDay, type BillingDay } from '../../core/billing-day.js';
import { workflowUrl } from '../../core/temporal-links.js';
import { billingDaySearchAttribute } from '../../workflows/search-attributes.js';
import { aggregateDayWorkflow } from '../../workflows/aggregate.js';
import { uploadDayWorkflow } from '../../workflows/upload.js';
import { reconcileDayWorkflow } from '../../workflows/reconcile.js';
import { startTrialWorkflow, trialSettingsFromConfig, trialWorkflowInput } from '../../activities/trial.js';
import { BillingDayParam, ErrorBody, WorkflowStarted } from '../schemas.js';

const Organisation = Type.Object({
  id: Type.String(),
  name: Type.String(),
  internalInstanceId: Type.String(),
  zuoraAccountNumber: Type.Union([Type.String(), Type.Null()]),
});

/** Operator endpoints: register organisations, run a day's aggregation or upload through Temporal. */
export const adminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db, temporal, zuora } = app.deps;

  app.post('/admin/organisations', {
    schema: {
      summary: 'Register an organisation and its Zuora account',
      description: 'Idempotent: registering the same organisation again returns it (and creates its Zuora account if an earlier try did not).',
      tags: ['admin'],
      body: Type.Object({
        id: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._-]+$' }),
        name: Type.String({ minLength: 1, maxLength: 255 }),
        internalInstanceId: Type.String({ minLength: 1, maxLength: 256 }),
        currency: Type.String({ default: 'USD', pattern: '^[A-Z]{3}$' }),
        trialDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 365, description: 'Trial length; TRIAL_DAYS when absent' })),
        contact: Type.Object({ firstName: Type.String({ minLength: 1 }), lastName: Type.String({ minLength: 1 }), workEmail: Type.Optional(Type.String()) }, {
          default: { firstName: 'Billing', lastName: 'Contact' },
        }),
      }),
      response: { 200: Organisation, 409: ErrorBody },
    },
  }, async (req, reply) => {
    const { id, name, internalInstanceId } = req.body;
    const inserted = await db.query(
      `INSERT INTO organisations (id, name, internal_instance_id) VALUES ($1, $2, $3)
       ON CONFLICT (id) DO NOTHING`,
      [id, name, internalInstanceId],
    ).catch((err: { code?: string }) => {
      if (err.code === '23505') return null; // the instance id belongs to another organisation
      throw err;
    });
    const row = (await db.query<{ id: string; name: string; internal_instance_id: string; zuora_account_number: string | null }>(
      'SELECT id, name, internal_instance_id, zuora_account_number FROM organisations WHERE id = $1', [id],
    )).rows[0];
    if (inserted === null || !row || row.internal_instance_id !== internalInstanceId) {
      return reply.code(409).send({
        code: 'ORG_CONFLICT', field: 'internalInstanceId',
        message: `organisation ${id} or instance ${internalInstanceId} is already registered with a different pairing`,
      });
    }
    let accountNumber = row.zuora_account_number;
    if (accountNumber === null) {
      const account = await zuora.createAccount(
        { name, currency: req.body.currency, billCycleDay: 1, contact: req.body.contact },
        `tally-org-${id}`,
      );
      accountNumber = account.accountNumber;
      await db.query('UPDATE organisations SET zuora_account_id = $2, zuora_account_number = $3 WHERE id = $1', [id, account.accountId, accountNumber]);
    }
    // Its trial: started once, joined (not restarted) when registration is repeated; an organisation
    // already paid or cancelled gets none. The hourly trial sweep starts any that this missed.
    const status = (await db.query<{ status: string }>('SELECT status FROM organisations WHERE id = $1', [id])).rows[0]?.status;
    if (status === 'trial' || status === 'trial_expired') {
      await startTrialWorkflow(temporal, config.TEMPORAL_TASK_QUEUE, trialWorkflowInput(trialSettingsFromConfig(config), id, {
        trialDays: req.body.trialDays, contactEmail: req.body.contact.workEmail ?? null,
      }), { joinRunning: true });
    }
    return { id, name: row.name, internalInstanceId, zuoraAccountNumber: accountNumber };
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
        response: { 202: WorkflowStarted, 200: WorkflowStarted, 400: ErrorBody },
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
      return reply.code(200).send({ ...started, result: await handle.result() });
    });
  }
};
