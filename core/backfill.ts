import { WorkflowIdConflictPolicy, type Client, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { addDays, billingDayOf, isBillingDay, type BillingDay } from './billing-day.js';
import { backfillWorkflow, backfillWorkflowId } from '../workflows/backfill.js';

/** The longest range one backfill takes: a year of days, each a full scan of its partition. */
export const MAX_BACKFILL_DAYS = 366;

export type BackfillRangeCheck = { ok: true; from: BillingDay; to: BillingDay } | { ok: false; field: 'from' | 'to'; message: string };

/** A backfill range the API and the CLI both accept: calendar days, in order, not in the future, at most a year. */
export function checkBackfillRange(from: string, to: string, now = Date.now()): BackfillRangeCheck {
  if (!isBillingDay(from)) return { ok: false, field: 'from', message: `from is not a calendar day (YYYY-MM-DD): ${from}` };
  if (!isBillingDay(to)) return { ok: false, field: 'to', message: `to is not a calendar day (YYYY-MM-DD): ${to}` };
  if (from > to) return { ok: false, field: 'from', message: `from (${from}) is after to (${to})` };
  const today = billingDayOf(now);
  if (to > today) return { ok: false, field: 'to', message: `to (${to}) is in the future; today is ${today}` };
  if (addDays(from, MAX_BACKFILL_DAYS - 1) < to) return { ok: false, field: 'to', message: `a backfill takes at most ${MAX_BACKFILL_DAYS} days; split the range` };
  return { ok: true, from, to };
}

/**
 * Starts backfill-<from>-<to>, or attaches to the run already going: asking again after a crash
 * or a Ctrl-C follows the same backfill rather than starting a second one.
 */
export async function startBackfill(temporal: Client, taskQueue: string, from: BillingDay, to: BillingDay): Promise<WorkflowHandleWithFirstExecutionRunId<typeof backfillWorkflow>> {
  return temporal.workflow.start(backfillWorkflow, {
    workflowId: backfillWorkflowId(from, to),
    taskQueue,
    args: [from, to],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    staticSummary: `Backfill ${from} to ${to}: recompute each day from BigQuery`,
  });
}
