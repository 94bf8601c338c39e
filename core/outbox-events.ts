import { gunzipSync, gzipSync } from 'node:zlib';
import type { BillingDay } from './billing-day.js';
import type { AcceptedEvent } from './usage-event.js';

/** An accepted event as the API hands it to the outbox: its key and `canonicalPayload` (core/usage-event.ts). */
export interface OutboxEntry {
  key: string;
  payload: string;
}

/** An event in the outbox: `[key, instanceId, occurredAt, amounts, metadata]`. */
type OutboxTuple = [string, string, string, Record<string, number>, Record<string, string>];

/**
 * A batch's accepted events as the outbox keeps them (`ingest_batches.events_gzip`, migration
 * 014): a gzipped JSON array of `[key, instanceId, occurredAt, amounts, metadata]`, compressed by
 * the API at level 1 so that Postgres neither parses nor compresses 100 KB per request. Each entry
 * is the canonical payload the key claim hashed, with the key in front: the API serializes an
 * event once (docs/benchmarks.md).
 */
export function encodeOutboxEvents(entries: readonly OutboxEntry[]): Buffer {
  return gzipSync(`[${entries.map((e) => `[${JSON.stringify(e.key)},${e.payload.slice(1)}`).join(',')}]`, { level: 1 });
}

/**
 * The events of an outbox row, in any form it was written in: gzipped tuples, gzipped objects
 * (before tuples), or the `json` column of rows written before migration 014. A row with none has
 * had its events pruned; reading it for writing is a bug, and answering "no events" would mark a
 * batch written that never reached BigQuery.
 */
export function decodeOutboxEvents(row: { batch_id: string; events_gzip: Buffer | null; events: AcceptedEvent[] | null }): AcceptedEvent[] {
  if (row.events_gzip) {
    const stored = JSON.parse(gunzipSync(row.events_gzip).toString('utf8')) as (OutboxTuple | AcceptedEvent)[];
    return stored.map((e) => (Array.isArray(e) ? fromTuple(e) : e));
  }
  if (row.events) return row.events;
  throw new Error(`outbox batch ${row.batch_id} holds no events (pruned?)`);
}

function fromTuple([key, instanceId, occurredAt, amounts, metadata]: OutboxTuple): AcceptedEvent {
  return { key, instanceId, occurredAt, day: occurredAt.slice(0, 10) as BillingDay, amounts, metadata };
}
