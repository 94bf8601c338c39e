import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type * as activities from '../activities/index.js';
import type { BillingDay } from '../core/billing-day.js';
import { zuoraTaskQueue } from '../core/task-queues.js';

/**
 * reconcile-<day>: compares the day's usage in Postgres, the upload ledger and Zuora's records,
 * per account and unit, and records every difference (docs/decisions.md). Zuora reads run on
 * the rate-limited Zuora queue.
 */
export async function reconcileDayWorkflow(day: BillingDay): Promise<Awaited<ReturnType<activities.Activities['reconcileDay']>>> {
  const { reconcileDay } = proxyActivities<activities.Activities>({
    taskQueue: zuoraTaskQueue(workflowInfo().taskQueue),
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes' },
  });
  return reconcileDay(day);
}
