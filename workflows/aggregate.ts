import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { ParentClosePolicy, proxyActivities, startChild } from '@temporalio/workflow';
import type * as activities from '../activities/index.js';
import type { AggregateOptions } from '../activities/aggregate.js';
import { thresholdWebhookWorkflowId } from '../core/usage-thresholds.js';
import type { BillingDay } from '../core/billing-day.js';
import { thresholdWebhookWorkflow } from './thresholds.js';

const { aggregateDay, recordThresholdCrossings } = proxyActivities<activities.Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes' },
});

/**
 * aggregate-<day>: makes the day's usage lines in Postgres equal to the deduplicated raw events,
 * for every customer of the day (an operator, a backfill) or for the dirty ones (the schedule).
 * One workflow id per day, so two recomputes of a day never race.
 */
export async function aggregateDayWorkflow(
  day: BillingDay,
  options: AggregateOptions = { scope: 'full', reason: 'recompute' },
): Promise<Awaited<ReturnType<activities.Activities['aggregateDay']>>> {
  const result = await aggregateDay(day, options);
  if (result.changed > 0 || result.removed > 0) await notifyThresholds(day);
  return result;
}

/** Each newly crossed usage threshold gets its own webhook workflow, which outlives this one. */
async function notifyThresholds(day: BillingDay): Promise<void> {
  for (const crossing of await recordThresholdCrossings(day)) {
    try {
      await startChild(thresholdWebhookWorkflow, {
        workflowId: thresholdWebhookWorkflowId(crossing),
        args: [crossing],
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err; // already on its way
    }
  }
}
