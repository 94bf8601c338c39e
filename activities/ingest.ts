import { Context } from '@temporalio/activity';
import type pg from 'pg';
import { dayClosesAt, type BillingDay } from '../core/billing-day.js';
import { decodeOutboxEvents } from '../core/outbox-events.js';
import { inTransaction } from '../db/pool.js';
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

/**
 * What a pass adds to the live counters and which (customer, day) pairs it makes dirty, in the
 * transaction that marks its batches written: each accepted event counts once, however often
 * the pass is retried.
 */
async function recordWritten(client: pg.PoolClient, batches: { events: AcceptedEvent[] }[], closeDelayHours: number): Promise<void> {
  const live = new Map<string, { instance: string; day: BillingDay; type: string; total: bigint; count: number }>();
  const dirty = new Map<string, { instance: string; day: BillingDay }>();
  for (const { events } of batches) {
    for (const e of events) {
      dirty.set(`${e.day}\u0000${e.instanceId}`, { instance: e.instanceId, day: e.day });
      for (const [type, value] of Object.entries(e.amounts)) {
        const k = `${e.instanceId}\u0000${e.day}\u0000${type}`;
        const line = live.get(k) ?? { instance: e.instanceId, day: e.day, type, total: 0n, count: 0 };
        line.total += BigInt(value);
        line.count += 1;
        live.set(k, line);
      }
    }
  }
  const lines = [...live.values()];
  await client.query(
    `INSERT INTO usage_live (internal_instance_id, billing_day, amount_type, total, event_count)
     SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::numeric[], $5::bigint[])
     ON CONFLICT (internal_instance_id, billing_day, amount_type) DO UPDATE
       SET total = usage_live.total + EXCLUDED.total, event_count = usage_live.event_count + EXCLUDED.event_count, updated_at = now()`,
    [lines.map((l) => l.instance), lines.map((l) => l.day), lines.map((l) => l.type), lines.map((l) => l.total.toString()), lines.map((l) => l.count)],
  );
  const now = Date.now();
  const pairs = [...dirty.values()].sort((a, b) => (a.day + a.instance < b.day + b.instance ? -1 : 1));
  // A new mark, or a fresh generation on an existing one: an aggregation already under way clears only what it saw.
  await client.query(
    `INSERT INTO dirty_days (billing_day, internal_instance_id, late)
     SELECT * FROM unnest($1::date[], $2::text[], $3::boolean[])
     ON CONFLICT (billing_day, internal_instance_id) DO UPDATE
       SET generation = nextval('dirty_day_generation'), late = dirty_days.late OR EXCLUDED.late`,
    [pairs.map((p) => p.day), pairs.map((p) => p.instance), pairs.map((p) => dayClosesAt(p.day, closeDelayHours).getTime() <= now)],
  );
}

export function createIngestActivities(deps: { db: pg.Pool; rawEvents: RawEventStore; closeDelayHours: number }) {
  /** Takes waiting batches (skipping those another drainer holds), writes them, marks them written. */
  async function drainOnce(writtenBy: string): Promise<DrainResult> {
    return inTransaction(deps.db, async (client) => {
      const { rows: stored } = await client.query<{ batch_id: string; events: AcceptedEvent[] | null; events_gzip: Buffer | null; received_at: Date }>(
        `SELECT batch_id, events, events_gzip, received_at FROM ingest_batches
         WHERE written_at IS NULL ORDER BY received_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [BATCHES_PER_PASS],
      );
      const rows = stored.map((r) => ({ batch_id: r.batch_id, received_at: r.received_at, events: decodeOutboxEvents(r) }));
      const written = await deps.rawEvents.insertBatches(
        rows.map((r) => ({ events: r.events, batchId: r.batch_id, receivedAt: r.received_at.toISOString() })),
      );
      if (rows.length > 0) {
        await client.query('UPDATE ingest_batches SET written_at = now(), written_by = $2 WHERE batch_id = ANY($1)', [
          rows.map((r) => r.batch_id), writtenBy,
        ]);
        await recordWritten(client, rows, deps.closeDelayHours);
      }
      return { batches: rows.length, events: rows.reduce((n, r) => n + r.events.length, 0), rows: written };
    });
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
