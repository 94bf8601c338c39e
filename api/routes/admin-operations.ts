import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DayRangeQuery, resolveDayRange } from '../day-range.js';
import { ErrorBody, Quantity } from '../schemas.js';
import { failedWorkflows, stuckWorkflows, type ProblemSearch } from '../workflow-problems.js';

const ProblemWorkflow = Type.Object({
  workflowId: Type.String(),
  runId: Type.String(),
  type: Type.String({ description: 'The workflow type, e.g. aggregateDayWorkflow' }),
  status: Type.String({ description: 'FAILED, TIMED_OUT, TERMINATED or RUNNING' }),
  taskQueue: Type.String(),
  startTime: Type.String(),
  closeTime: Type.Union([Type.String(), Type.Null()]),
  billingDay: Type.Union([Type.String(), Type.Null()], { description: 'The BillingDay search attribute, when set' }),
  orgId: Type.Union([Type.String(), Type.Null()], { description: 'The OrgId search attribute, when set' }),
  reason: Type.Union([Type.String(), Type.Null()], { description: "Why the run ended: its failure's messages, the termination's reason, or the timeout" }),
  temporalUrl: Type.String({ description: 'This run in the Temporal UI' }),
});

const NullableQuantity = Type.Union([Quantity, Type.Null()]);
const DriftDay = Type.Object({
  day: Type.String(),
  runId: Type.Integer({ description: 'The latest reconciliation of the day' }),
  runs: Type.Integer({ description: 'How many times the day was reconciled' }),
  lines: Type.Integer({ description: 'Billable lines compared' }),
  differences: Type.Integer(),
  finishedAt: Type.String(),
});
const Difference = Type.Object({
  day: Type.String(),
  runId: Type.Integer(),
  uniqueKey: Type.String(),
  kind: Type.String({ description: 'not_uploaded, ledger_behind, missing_in_zuora, quantity_differs or unknown_in_zuora' }),
  orgId: Type.Union([Type.String(), Type.Null()]),
  zuoraAccountNumber: Type.Union([Type.String(), Type.Null()]),
  amountType: Type.Union([Type.String(), Type.Null()]),
  usage: NullableQuantity,
  ledger: NullableQuantity,
  zuora: Type.Union([Type.String({ description: 'Decimal string, as Zuora holds it' }), Type.Null()]),
});

/** Most differences one answer lists: a day gone badly wrong should not make a page of megabytes. */
const MAX_DIFFERENCES = 1000;

/** Operators' view of what went wrong: workflows that failed or hang, and drift between Tally and Zuora. */
export const adminOperationsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db, temporal } = app.deps;
  const search: ProblemSearch = { temporal, namespace: config.TEMPORAL_NAMESPACE, taskQueue: config.TEMPORAL_TASK_QUEUE, uiUrl: config.TEMPORAL_UI_URL };
  const limit = Type.Integer({ minimum: 1, maximum: 500, default: 100 });

  app.get('/admin/workflows/failed', {
    schema: {
      summary: "Tally's workflows that failed, timed out or were terminated lately",
      description: "From Temporal's visibility store, on Tally's task queue, newest first, each with the reason it ended.",
      tags: ['admin'],
      querystring: Type.Object({ days: Type.Integer({ minimum: 1, maximum: 90, default: 7, description: 'Closed within this many days' }), limit }),
      response: { 200: Type.Object({ days: Type.Integer(), workflows: Type.Array(ProblemWorkflow) }), 400: ErrorBody },
    },
  }, async (req) => ({ days: req.query.days, workflows: await failedWorkflows(search, req.query.days, req.query.limit) }));

  app.get('/admin/workflows/stuck', {
    schema: {
      summary: "Tally's workflows still running long after they started",
      description: 'Running runs older than the threshold, leaving out the long-lived entity workflows (trial-<orgId>, ingest-drainer-<queue>), which run for months by design.',
      tags: ['admin'],
      querystring: Type.Object({
        olderThanMinutes: Type.Integer({ minimum: 0, maximum: 525_600, default: 120, description: 'Started more than this many minutes ago (0: every running one)' }),
        limit,
      }),
      response: { 200: Type.Object({ olderThanMinutes: Type.Integer(), workflows: Type.Array(ProblemWorkflow) }), 400: ErrorBody },
    },
  }, async (req) => ({ olderThanMinutes: req.query.olderThanMinutes, workflows: await stuckWorkflows(search, req.query.olderThanMinutes, req.query.limit) }));

  app.get('/admin/reconciliations', {
    schema: {
      summary: 'Reconciliation drift: per day, the latest comparison of usage, upload ledger and Zuora, and its differences',
      description: `Days that were reconciled in the range (default: the last 30), newest first; differences of each day's latest run, at most ${MAX_DIFFERENCES}.`,
      tags: ['admin'],
      querystring: Type.Object(DayRangeQuery),
      response: {
        200: Type.Object({
          from: Type.String(), to: Type.String(), days: Type.Array(DriftDay), differences: Type.Array(Difference),
          truncated: Type.Boolean({ description: `More than ${MAX_DIFFERENCES} differences: the rest are left out` }),
        }),
        400: ErrorBody,
      },
    },
  }, async (req, reply) => {
    const range = resolveDayRange(req.query, 30);
    if (!range.ok) return reply.code(400).send(range.error);
    const latestRuns = `SELECT DISTINCT ON (billing_day) id, billing_day, lines, differences, finished_at,
                               count(*) OVER (PARTITION BY billing_day)::int AS runs
                        FROM reconciliation_runs WHERE billing_day BETWEEN $1 AND $2
                        ORDER BY billing_day DESC, id DESC`;
    const [days, differences] = await Promise.all([
      db.query<{ id: number; billing_day: string; lines: number; differences: number; finished_at: Date; runs: number }>(latestRuns, [range.from, range.to]),
      db.query<{
        run_id: number; billing_day: string; unique_key: string; kind: string; org_id: string | null; zuora_account_number: string | null;
        amount_type: string | null; usage_quantity: string | null; ledger_quantity: string | null; zuora_quantity: string | null;
      }>(
        `WITH latest AS (${latestRuns})
         SELECT d.run_id, r.billing_day, d.unique_key, d.kind, d.org_id, d.zuora_account_number, d.amount_type,
                d.usage_quantity, d.ledger_quantity, d.zuora_quantity
         FROM reconciliation_differences d JOIN latest r ON r.id = d.run_id
         ORDER BY r.billing_day DESC, d.kind, d.unique_key LIMIT ${MAX_DIFFERENCES + 1}`,
        [range.from, range.to],
      ),
    ]);
    return {
      from: range.from,
      to: range.to,
      days: days.rows.map((r) => ({ day: r.billing_day, runId: r.id, runs: r.runs, lines: r.lines, differences: r.differences, finishedAt: r.finished_at.toISOString() })),
      differences: differences.rows.slice(0, MAX_DIFFERENCES).map((d) => ({
        day: d.billing_day, runId: d.run_id, uniqueKey: d.unique_key, kind: d.kind, orgId: d.org_id, zuoraAccountNumber: d.zuora_account_number,
        amountType: d.amount_type, usage: d.usage_quantity, ledger: d.ledger_quantity, zuora: d.zuora_quantity,
      })),
      truncated: differences.rows.length > MAX_DIFFERENCES,
    };
  });
};
