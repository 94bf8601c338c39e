import { proxyActivities } from '@temporalio/workflow';
import type * as activities from '../activities/index.js';

const { maintainKeyLedger, pruneIngestOutbox } = proxyActivities<activities.Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '10 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes' },
});

/**
 * Daily: partitions of the key ledger ahead of time, expired weeks dropped, and the ingest
 * outbox pruned (events after OUTBOX_RETENTION_DAYS, records after the backdating window).
 */
export async function maintainKeyLedgerWorkflow(): Promise<Awaited<ReturnType<activities.Activities['maintainKeyLedger']>>
  & { outbox: Awaited<ReturnType<activities.Activities['pruneIngestOutbox']>> }> {
  const ledger = await maintainKeyLedger();
  return { ...ledger, outbox: await pruneIngestOutbox() };
}
