import { proxyActivities } from '@temporalio/workflow';
import type * as activities from '../activities/index.js';

const { writeBatchToBigQuery } = proxyActivities<activities.Activities>({
  startToCloseTimeout: '2 minutes',
  // BigQuery outages are waited out: the batch sits in the outbox until it is written.
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});

/** ingest-<batchId>: moves an accepted batch from the Postgres outbox into BigQuery. */
export async function ingestBatchWorkflow(batchId: string): Promise<Awaited<ReturnType<activities.Activities["writeBatchToBigQuery"]>>> {
  return writeBatchToBigQuery(batchId);
}
