import { ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type * as activities from '../activities/index.js';
import type { BillingDay } from '../core/billing-day.js';
import { zuoraTaskQueue } from '../core/task-queues.js';

const zuoraRetry = { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes' };

// Zuora calls run on their own task queue, whose workers hold them to Zuora's rate limit.
const zuora = () => ({
  submit: proxyActivities<activities.Activities>({
    taskQueue: zuoraTaskQueue(workflowInfo().taskQueue),
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '2 minutes',
    retry: zuoraRetry,
  }).submitUsageImport,
  await: proxyActivities<activities.Activities>({
    taskQueue: zuoraTaskQueue(workflowInfo().taskQueue),
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '1 minute',
    retry: zuoraRetry,
  }).awaitUsageImport,
});

const { recordUsageImport, assertDayClosed } = proxyActivities<activities.Activities>({
  startToCloseTimeout: '1 minute',
  retry: zuoraRetry,
});

export interface UploadDayResult {
  importIds: string[];
  records: number;
  corrections: number;
  unbillable: number;
  status: 'Completed' | 'nothing-to-send';
}

/**
 * upload-<day>: sends the day's usage lines to Zuora as usage imports under deterministic
 * UniqueKeys and records each in the upload ledger. Re-running a day sends only what changed,
 * and a changed line is a correction of the record Zuora holds, never a second one. Only a
 * closed day uploads (DayOpen otherwise).
 */
export async function uploadDayWorkflow(day: BillingDay): Promise<UploadDayResult> {
  await assertDayClosed(day);
  const calls = zuora();
  const submitted = await calls.submit(day);
  if (submitted.importIds.length === 0) return { ...submitted, status: 'nothing-to-send' };
  const failures: string[] = [];
  for (const importId of submitted.importIds) {
    const result = await calls.await(importId);
    await recordUsageImport(importId, result.status, result.message);
    if (result.status !== 'Completed') failures.push(`${importId} ${result.status}: ${result.message ?? ''}`);
  }
  if (failures.length > 0) {
    throw ApplicationFailure.nonRetryable(`Zuora refused ${failures.length} usage import(s): ${failures.join('; ')}`, 'ZuoraImportFailed');
  }
  return { ...submitted, status: 'Completed' };
}
