import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type * as activities from '../activities/index.js';
import type { BillingDay } from '../core/billing-day.js';

const zuoraRetry = { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', nonRetryableErrorTypes: [] };

const { submitUsageImport, recordUsageImport } = proxyActivities<activities.Activities>({
  startToCloseTimeout: '5 minutes',
  retry: zuoraRetry,
});
const { awaitUsageImport } = proxyActivities<activities.Activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '1 minute',
  retry: zuoraRetry,
});

export interface UploadDayResult {
  importId: string | null;
  records: number;
  unbillable: number;
  status: string;
}

/**
 * upload-<day>: sends the day's usage lines to Zuora as a usage import under deterministic
 * UniqueKeys and records each in the upload ledger. Re-running a day sends only what changed.
 */
export async function uploadDayWorkflow(day: BillingDay): Promise<UploadDayResult> {
  const submitted = await submitUsageImport(day);
  if (submitted.importId === null) return { ...submitted, status: 'nothing-to-send' };
  const result = await awaitUsageImport(submitted.importId);
  await recordUsageImport(submitted.importId, result.status, result.message);
  if (result.status !== 'Completed') {
    throw ApplicationFailure.nonRetryable(`Zuora import ${submitted.importId} ${result.status}: ${result.message ?? ''}`, 'ZuoraImportFailed');
  }
  return { ...submitted, status: result.status };
}
