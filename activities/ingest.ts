import type pg from 'pg';
import { lockBatchSql } from '../db/ingest-lock.js';
import type { AcceptedEvent } from '../core/usage-event.js';
import type { RawEventStore } from './raw-events.js';

export interface WriteBatchResult {
  /** `abandoned`: the request that started this workflow rolled back (e.g. answered 503), so there is nothing to write. */
  status: 'written' | 'already-written' | 'abandoned';
  rows: number;
}

export function createIngestActivities(deps: { db: pg.Pool; rawEvents: RawEventStore }) {
  return {
    /** Writes an accepted batch from the outbox to BigQuery. Safe to repeat: rows carry their insert id. */
    async writeBatchToBigQuery(batchId: string): Promise<WriteBatchResult> {
      const client = await deps.db.connect();
      let batch: { events: AcceptedEvent[]; received_at: Date; written_at: Date | null } | undefined;
      try {
        await client.query('BEGIN');
        await client.query(lockBatchSql, [batchId]);
        batch = (await client.query('SELECT events, received_at, written_at FROM ingest_batches WHERE batch_id = $1', [batchId])).rows[0];
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      if (!batch) return { status: 'abandoned', rows: 0 };
      if (batch.written_at) return { status: 'already-written', rows: 0 };
      const rows = await deps.rawEvents.insert(batch.events, batchId, batch.received_at.toISOString());
      await deps.db.query('UPDATE ingest_batches SET written_at = now() WHERE batch_id = $1', [batchId]);
      return { status: 'written', rows };
    },
  };
}
