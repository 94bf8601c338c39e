import { WorkflowIdConflictPolicy, type Client, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { billingDayOf, checkDayRange, type BillingDay, type DayRangeCheck } from './billing-day.js';
import { backfillWorkflow, backfillWorkflowId } from '../workflows/backfill.js';

/** The longest range one backfill takes: a year of days, each a full scan of its partition. */
export const MAX_BACKFILL_DAYS = 366;

/** A backfill range: calendar days, in order, at most a year, and not in the future. */
export function checkBackfillRange(from: string, to: string, now = Date.now()): DayRangeCheck {
  const range = checkDayRange(from, to, MAX_BACKFILL_DAYS);
  if (!range.ok) return range;
  const today = billingDayOf(now);
  if (range.to > today) return { ok: false, error: { code: 'INVALID_RANGE', field: 'to', message: `to (${range.to}) is in the future; today is ${today}` } };
  return range;
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
