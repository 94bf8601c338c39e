import { proxyActivities } from '@temporalio/workflow';
import type * as activities from '../activities/index.js';

const { maintainKeyLedger } = proxyActivities<activities.Activities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '10 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes' },
});

/** Daily: partitions of the key ledger ahead of time, expired weeks dropped. */
export async function maintainKeyLedgerWorkflow(): Promise<Awaited<ReturnType<activities.Activities['maintainKeyLedger']>>> {
  return maintainKeyLedger();
}
