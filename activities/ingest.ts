import { Context } from '@temporalio/activity';
import type pg from 'pg';
import type { AcceptedEvent } from '../core/usage-event.js';
import type { RawEventStore } from './raw-events.js';

export interface DrainResult {
  batches: number;
  events: number;
  rows: number;
}

/**
 * How many batches one transaction takes: enough rows for an efficient BigQuery insert, few
 * enough that a retried insert repeats little.
 */
const BATCHES_PER_PASS = 20;

export function createIngestActivities(deps: { db: pg.Pool; rawEvents: RawEventStore }) {
  /** Takes waiting batches (skipping those another drainer holds), writes them, marks them written. */
  async function drainOnce(writtenBy: string): Promise<DrainResult> {
    const client = await deps.db.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ batch_id: string; events: AcceptedEvent[]; received_at: Date }>(
        `SELECT batch_id, events, received_at FROM ingest_batches
         WHERE written_at IS NULL ORDER BY received_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [BATCHES_PER_PASS],
      );
      let written = 0;
      for (const batch of rows) written += await deps.rawEvents.insert(batch.events, batch.batch_id, batch.received_at.toISOString());
      if (rows.length > 0) {
        await client.query('UPDATE ingest_batches SET written_at = now(), written_by = $2 WHERE batch_id = ANY($1)', [
          rows.map((r) => r.batch_id), writtenBy,
        ]);
      }
      await client.query('COMMIT');
      return { batches: rows.length, events: rows.reduce((n, r) => n + r.events.length, 0), rows: written };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  return {
    /**
     * Writes accepted batches from the Postgres outbox to BigQuery for about `forMs`, waiting for
     * new ones when there are none. Safe to repeat: a batch is marked written in the transaction
     * that holds it, and its rows carry their insert ids, so a retried insert dedupes.
     */
    async drainIngestOutbox(forMs: number, idleWaitMs = 250): Promise<DrainResult> {
      const ctx = Context.current();
      const total: DrainResult = { batches: 0, events: 0, rows: 0 };
      const until = Date.now() + forMs;
      while (Date.now() < until && !ctx.cancellationSignal.aborted) {
        const pass = await drainOnce(ctx.info.workflowExecution?.workflowId ?? 'unknown');
        total.batches += pass.batches;
        total.events += pass.events;
        total.rows += pass.rows;
        ctx.heartbeat(total);
        if (pass.batches < BATCHES_PER_PASS) await ctx.sleep(idleWaitMs).catch(() => undefined);
      }
      return total;
    },
  };
}
