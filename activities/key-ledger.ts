import { Context } from '@temporalio/activity';
import type pg from 'pg';
import { addDays, billingDayOf, type BillingDay } from '../core/billing-day.js';

export interface KeyLedgerMaintenance {
  created: number;
  dropped: number;
  /** Keys were kept from this day on. */
  keptFrom: BillingDay;
}

export interface OutboxPruning {
  /** Written batches whose events were dropped (older than the outbox retention). */
  eventsPruned: number;
  /** Batch records deleted (older than the backdating window). */
  batchesDeleted: number;
}

/** Rows changed per statement: short transactions, however large the backlog. */
const PRUNE_CHUNK = 5_000;

/**
 * One chunk of the outbox's retention: drops the events of up to $3 batches written before $1 less
 * $2 days. It finds them through the partial index of batches still holding events (migration
 * 018): through the index of all written batches it walked past every batch already pruned, the
 * 29 days of records kept, and Postgres read the whole table for each chunk instead.
 */
export const PRUNE_EVENTS = `UPDATE ingest_batches SET events = NULL, events_gzip = NULL, events_pruned_at = now()
  WHERE batch_id IN (SELECT batch_id FROM ingest_batches
                     WHERE written_at IS NOT NULL AND written_at < $1::timestamptz - make_interval(days => $2)
                       AND (events IS NOT NULL OR events_gzip IS NOT NULL)
                     LIMIT $3)`;

export function createKeyLedgerActivities(deps: { db: pg.Pool; backdatingWindowDays: number; outboxRetentionDays: number }) {
  /** Runs a chunked statement until it changes nothing, heartbeating between chunks. */
  async function inChunks(sql: string, params: unknown[]): Promise<number> {
    let total = 0;
    for (;;) {
      const n = (await deps.db.query(sql, [...params, PRUNE_CHUNK])).rowCount ?? 0;
      total += n;
      heartbeat(total);
      if (n < PRUNE_CHUNK) return total;
    }
  }

  return {
    /**
     * The outbox's retention: a written batch drops its events after the outbox retention, and
     * its record after the backdating window (when the key ledger forgets its keys too). A batch
     * not yet written is never touched.
     */
    async pruneIngestOutbox(now: string = new Date().toISOString()): Promise<OutboxPruning> {
      const eventsPruned = await inChunks(PRUNE_EVENTS, [now, deps.outboxRetentionDays]);
      const batchesDeleted = await inChunks(
        `DELETE FROM ingest_batches
         WHERE batch_id IN (SELECT batch_id FROM ingest_batches
                            WHERE written_at IS NOT NULL AND written_at < $1::timestamptz - make_interval(days => $2)
                            LIMIT $3)`,
        [now, deps.backdatingWindowDays + 1],
      );
      return { eventsPruned, batchesDeleted };
    },

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

function heartbeat(details: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // called outside an activity (a script): nothing to tell
  }
}
