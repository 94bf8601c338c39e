import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { WorkflowNotFoundError } from '@temporalio/client';
import { checkBackfillRange, MAX_BACKFILL_DAYS, startBackfill } from '../../core/backfill.js';
import { workflowUrl } from '../../core/temporal-links.js';
import { backfillProgress } from '../../workflows/backfill.js';
import { BillingDayParam, ErrorBody, WorkflowStarted } from '../schemas.js';

const Progress = Type.Object({
  from: Type.String(), to: Type.String(), total: Type.Integer(), done: Type.Integer(),
  current: Type.Union([Type.String(), Type.Null()]), changed: Type.Integer(), restated: Type.Integer(),
});

/** Operators recompute a range of days through Temporal, and follow its progress. */
export const backfillRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, temporal } = app.deps;
  const link = (workflowId: string) => workflowUrl(config.TEMPORAL_UI_URL, config.TEMPORAL_NAMESPACE, workflowId);

  app.post('/admin/backfills', {
    schema: {
      summary: 'Recompute a range of days from BigQuery into Postgres',
      description: `Starts backfill-<from>-<to> (or answers with the run already going): each day in full, one after the other, `
        + `resumable after a crash; changes to closed days are restatements with reason "backfill". At most ${MAX_BACKFILL_DAYS} days.`,
      tags: ['admin'],
      body: Type.Object({ from: BillingDayParam, to: BillingDayParam }),
      response: { 202: WorkflowStarted, 400: ErrorBody },
    },
  }, async (req, reply) => {
    const range = checkBackfillRange(req.body.from, req.body.to);
    if (!range.ok) return reply.code(400).send(range.error);
    const handle = await startBackfill(temporal, config.TEMPORAL_TASK_QUEUE, range.from, range.to);
    return reply.code(202).send({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId, temporalUrl: link(handle.workflowId) });
  });

  app.get('/admin/backfills/:workflowId', {
    schema: {
      summary: "A backfill's progress",
      tags: ['admin'],
      params: Type.Object({ workflowId: Type.String({ pattern: '^backfill-\\d{4}-\\d{2}-\\d{2}-\\d{4}-\\d{2}-\\d{2}$' }) }),
      response: { 200: Type.Object({ workflowId: Type.String(), status: Type.String(), temporalUrl: Type.String(), progress: Progress }), 404: ErrorBody },
    },
  }, async (req, reply) => {
    const handle = temporal.workflow.getHandle(req.params.workflowId);
    try {
      const [description, progress] = await Promise.all([handle.describe(), handle.query(backfillProgress)]);
      return { workflowId: handle.workflowId, status: description.status.name, temporalUrl: link(handle.workflowId), progress };
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      return reply.code(404).send({ code: 'BACKFILL_NOT_FOUND', message: `no backfill ${req.params.workflowId}` });
    }
  });
};
