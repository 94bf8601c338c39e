import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { executeChild, log, workflowInfo } from '@temporalio/workflow';
import { addDays, billingDayOf, type BillingDay } from '../core/billing-day.js';
import { aggregateDayWorkflow } from './aggregate.js';
import { reconcileDayWorkflow } from './reconcile.js';
import { uploadDayWorkflow } from './upload.js';
import { billingDaySearchAttribute, ScheduledStartTimeKey } from './search-attributes.js';

/**
 * The instant the schedule meant this run for, so a backfill of a past range does the right
 * days; a run started by hand falls back to its own start time.
 */
function scheduledTime(): Date {
  const info = workflowInfo();
  return info.typedSearchAttributes.get(ScheduledStartTimeKey) ?? info.startTime;
}

async function runChild(workflowType: typeof aggregateDayWorkflow | typeof uploadDayWorkflow | typeof reconcileDayWorkflow, prefix: string, day: BillingDay): Promise<void> {
  try {
    await executeChild(workflowType, {
      workflowId: `${prefix}-${day}`,
      args: [day],
      typedSearchAttributes: [billingDaySearchAttribute(day)],
    });
  } catch (err) {
    // Someone (an operator, a previous run) is already doing this day: that run will do it.
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      log.info('day already in progress', { workflowId: `${prefix}-${day}` });
      return;
    }
    throw err;
  }
}

/** Hourly: recompute the open days, yesterday (late events) and today. */
export async function scheduledAggregationWorkflow(): Promise<BillingDay[]> {
  const today = billingDayOf(scheduledTime());
  const days = [addDays(today, -1), today];
  for (const day of days) await runChild(aggregateDayWorkflow, 'aggregate', day);
  return days;
}

/** Daily: settle yesterday (one last aggregation) and upload it to Zuora. */
export async function scheduledUploadWorkflow(): Promise<BillingDay> {
  const yesterday = addDays(billingDayOf(scheduledTime()), -1);
  await runChild(aggregateDayWorkflow, 'aggregate', yesterday);
  await runChild(uploadDayWorkflow, 'upload', yesterday);
  return yesterday;
}

/** Daily, after the upload: reconcile yesterday against Zuora. */
export async function scheduledReconciliationWorkflow(): Promise<BillingDay> {
  const yesterday = addDays(billingDayOf(scheduledTime()), -1);
  await runChild(reconcileDayWorkflow, 'reconcile', yesterday);
  return yesterday;
}
