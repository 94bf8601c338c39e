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
 *
 * The draft keeps that JSON as one Buffer (outside the JavaScript heap) with where each entry ends,
 * so that a request waiting on Postgres holds it rather than 500 payload strings, and can still
 * encode the subset of its events that turn out accepted (docs/ingest.md, "What a request holds
 * while it waits").
 */
export class OutboxDraft {
  private constructor(
    /** `[entry,entry,...]` in UTF-8. */
    private readonly json: Buffer,
    /**
     * Where each entry ends in the JSON as a string (UTF-16 units, which cost nothing to count,
     * where bytes cost a pass over every entry); entry i starts one unit after entry i-1 ends.
     */
    private readonly ends: Uint32Array,
  ) {}

  static of(entries: readonly OutboxEntry[]): OutboxDraft {
    const texts = entries.map((e) => `[${JSON.stringify(e.key)},${e.payload.slice(1)}`);
    const ends = new Uint32Array(texts.length);
    let at = 1;
    for (let i = 0; i < texts.length; i++) {
      at += texts[i]!.length;
      ends[i] = at;
      at += 1; // the comma after it, or the closing bracket
    }
    return new OutboxDraft(Buffer.from(`[${texts.join(',')}]`, 'utf8'), ends);
  }

  /** Every entry, gzipped at level 1. */
  gzip(): Buffer {
    return gzipSync(this.json, { level: 1 });
  }

  /**
   * The entries at these positions (ascending), gzipped at level 1. The JSON is decoded back to
   * the string it was encoded from (JSON.stringify leaves no lone surrogate, so the round trip is
   * exact) and cut at the entries' ends: the rare batch with some keys taken pays for it.
   */
  gzipOf(positions: readonly number[]): Buffer {
    const text = this.json.toString('utf8');
    const parts = positions.map((p) => text.slice(p === 0 ? 1 : this.ends[p - 1]! + 1, this.ends[p]!));
    return gzipSync(`[${parts.join(',')}]`, { level: 1 });
  }
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
