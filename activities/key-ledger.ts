import type pg from 'pg';
import { addDays, billingDayOf, type BillingDay } from '../core/billing-day.js';

export interface KeyLedgerMaintenance {
  created: number;
  dropped: number;
  /** Keys were kept from this day on. */
  keptFrom: BillingDay;
}

export function createKeyLedgerActivities(deps: { db: pg.Pool; backdatingWindowDays: number }) {
  return {
    /**
     * Creates the key ledger's weekly partitions two weeks ahead and drops the weeks that ended
     * more than the backdating window (plus a day) ago: a key that old can only come back on an
     * event the window refuses anyway.
     */
    async maintainKeyLedger(today: BillingDay = billingDayOf(Date.now())): Promise<KeyLedgerMaintenance> {
      const keptFrom = addDays(today, -deps.backdatingWindowDays - 1);
      const created = await deps.db.query<{ n: number }>('SELECT tally_ensure_key_partitions($1, $2) AS n', [addDays(today, -7), addDays(today, 14)]);
      const dropped = await deps.db.query<{ n: number }>('SELECT tally_drop_key_partitions($1) AS n', [keptFrom]);
      return { created: created.rows[0]?.n ?? 0, dropped: dropped.rows[0]?.n ?? 0, keptFrom };
    },
  };
}
