import { proxyActivities } from '@temporalio/workflow';
import type * as activities from '../activities/index.js';
import type { ThresholdCrossing } from '../core/usage-thresholds.js';

const { deliverThresholdCrossing } = proxyActivities<activities.Activities>({
  startToCloseTimeout: '1 minute',
  // The customer's endpoint may be down for a while: keep trying for three days, backing off to hourly.
  scheduleToCloseTimeout: '3 days',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 hour' },
});

/**
 * threshold-<thresholdId>-<periodStart>: the one webhook of a crossed usage threshold. Its id is
 * the crossing, so two aggregations that see the same crossing start it once.
 */
export async function thresholdWebhookWorkflow(crossing: ThresholdCrossing): Promise<string> {
  return deliverThresholdCrossing(crossing);
}
