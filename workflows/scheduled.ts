import { ApplicationFailure, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { executeChild, log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type * as activities from '../activities/index.js';
import { addDays, billingDayOf, type BillingDay } from '../core/billing-day.js';
import { aggregateDayWorkflow } from './aggregate.js';
import { reconcileDayWorkflow } from './reconcile.js';
import { uploadDayWorkflow } from './upload.js';
import { billingDaySearchAttribute, ScheduledStartTimeKey } from './search-attributes.js';

const { daysToAggregate, daysAwaitingUpload } = proxyActivities<activities.Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});

/** Days recomputed side by side: enough to catch up after a pause, few enough to spare BigQuery. */
const PARALLEL_DAYS = 4;

/**
 * The instant the schedule meant this run for, so a backfill of a past range does the right
 * days; a run started by hand may name the instant it stands for, else it is its own start time.
 */
function scheduledTime(asOf?: string): Date {
  if (asOf !== undefined) return new Date(asOf);
  const info = workflowInfo();
  return info.typedSearchAttributes.get(ScheduledStartTimeKey) ?? info.startTime;
}

type DayWorkflow = typeof aggregateDayWorkflow | typeof uploadDayWorkflow | typeof reconcileDayWorkflow;

async function runChild<W extends DayWorkflow>(workflowType: W, prefix: string, day: BillingDay, args: Parameters<W>): Promise<void> {
  try {
    await executeChild(workflowType as typeof aggregateDayWorkflow, {
      workflowId: `${prefix}-${day}`,
      args: args as Parameters<typeof aggregateDayWorkflow>,
      typedSearchAttributes: [billingDaySearchAttribute(day)],
    });
  } catch (err) {
    // Someone (an operator, a backfill, a previous run) is already doing this day: that run will do it,
    // and a dirty mark it did not see stays for the next run.
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      log.info('day already in progress', { workflowId: `${prefix}-${day}` });
      return;
    }
    throw err;
  }
}

/** Runs `each` over the days, a few at a time; a day that fails does not stop the others, the run fails at the end. */
async function forEachDay(days: BillingDay[], what: string, each: (day: BillingDay) => Promise<void>): Promise<void> {
  const failures: string[] = [];
  for (let i = 0; i < days.length; i += PARALLEL_DAYS) {
    await Promise.all(days.slice(i, i + PARALLEL_DAYS).map((day) => each(day).catch((err: Error) => {
      failures.push(`${day}: ${err.cause instanceof Error ? err.cause.message : err.message}`);
    })));
  }
  if (failures.length > 0) throw ApplicationFailure.nonRetryable(`${what} failed for ${failures.length} day(s): ${failures.join('; ')}`, 'DaysFailed');
}

async function aggregatePendingDays(asOf: Date): Promise<BillingDay[]> {
  const days = await daysToAggregate(asOf.toISOString());
  await forEachDay(days, 'aggregation', (day) => runChild(aggregateDayWorkflow, 'aggregate', day, [day, { scope: 'dirty', reason: 'scheduled' }]));
  return days;
}

/**
 * Hourly: recompute the (customer, day) pairs that received events since their last
 * aggregation, and close the days whose close time has passed. No new events: no scan.
 */
export async function scheduledAggregationWorkflow(asOf?: string): Promise<BillingDay[]> {
  return aggregatePendingDays(scheduledTime(asOf));
}

/**
 * Daily: settle and close what is due, then upload every closed day Zuora does not hold as it
 * stands: yesterday, an earlier failure, and restated days (as corrections).
 */
export async function scheduledUploadWorkflow(asOf?: string): Promise<BillingDay[]> {
  const at = scheduledTime(asOf);
  await aggregatePendingDays(at);
  const days = await daysAwaitingUpload(at.toISOString());
  await forEachDay(days, 'upload', (day) => runChild(uploadDayWorkflow, 'upload', day, [day]));
  return days;
}

/** Daily, after the upload: reconcile yesterday against Zuora. */
export async function scheduledReconciliationWorkflow(): Promise<BillingDay> {
  const yesterday = addDays(billingDayOf(scheduledTime()), -1);
  await runChild(reconcileDayWorkflow, 'reconcile', yesterday, [yesterday]);
  return yesterday;
}
