import { gunzipSync, gzipSync } from 'node:zlib';
import type { AcceptedEvent } from './usage-event.js';

/**
 * A batch's accepted events as the outbox keeps them (`ingest_batches.events_gzip`, migration
 * 014): gzipped JSON, compressed by the API at level 1 so that Postgres
 * neither parses nor compresses 100 KB per request.
 */
export function encodeOutboxEvents(events: readonly AcceptedEvent[]): Buffer {
  return gzipSync(JSON.stringify(events), { level: 1 });
}

/**
 * The events of an outbox row, in either form: gzipped, or the `json` column of rows written
 * before migration 014. A row with neither has had its events pruned; reading it for writing is a
 * bug, and answering "no events" would mark a batch written that never reached BigQuery.
 */
export function decodeOutboxEvents(row: { batch_id: string; events_gzip: Buffer | null; events: AcceptedEvent[] | null }): AcceptedEvent[] {
  if (row.events_gzip) return JSON.parse(gunzipSync(row.events_gzip).toString('utf8')) as AcceptedEvent[];
  if (row.events) return row.events;
  throw new Error(`outbox batch ${row.batch_id} holds no events (pruned?)`);
}
