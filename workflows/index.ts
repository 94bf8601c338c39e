// The worker's workflow bundle: every workflow Tally runs.
export { drainIngestOutboxWorkflow } from './ingest.js';
export { aggregateDayWorkflow } from './aggregate.js';
export { backfillWorkflow } from './backfill.js';
export { uploadDayWorkflow } from './upload.js';
export { scheduledAggregationWorkflow, scheduledReconciliationWorkflow, scheduledUploadWorkflow } from './scheduled.js';
export { maintainKeyLedgerWorkflow } from './maintenance.js';
export { trialWorkflow, trialSweepWorkflow } from './trial.js';
export { reconcileDayWorkflow } from './reconcile.js';
export { thresholdWebhookWorkflow } from './thresholds.js';
