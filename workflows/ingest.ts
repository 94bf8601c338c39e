import { continueAsNew, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type * as activities from '../activities/index.js';

const { drainIngestOutbox } = proxyActivities<activities.Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  // BigQuery outages are waited out: the batches stay in the outbox until they are written.
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/** Each activity drains for this long; the history grows by a few events per period. */
const DRAIN_PERIOD_MS = 10_000;

/**
 * ingest-drainer-<task queue>: runs for as long as Tally does, taking accepted batches from the
 * Postgres outbox to BigQuery, and starts afresh (continue-as-new) before its history grows long.
 */
export async function drainIngestOutboxWorkflow(totals = { batches: 0, events: 0 }): Promise<never> {
  for (let pass = 0; pass < 100 && !workflowInfo().continueAsNewSuggested; pass++) {
    const drained = await drainIngestOutbox(DRAIN_PERIOD_MS);
    totals = { batches: totals.batches + drained.batches, events: totals.events + drained.events };
  }
  return continueAsNew<typeof drainIngestOutboxWorkflow>(totals);
}
