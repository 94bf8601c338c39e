import client, { type Registry } from 'prom-client';
import { canonicalTimestamp, type UsageEvent } from '../../core/usage-event.js';

/**
 * The Go billing client's record, one per amount type of an `AddAmounts` call:
 * `{unique_key: "<key>:<amount type>", internal_instance_id, amount_type, amount_value,
 * occurred_at: RFC 3339 with nanoseconds, metadata: {…} or null}`, turned into the UsageEvent that
 * `ingestEvents` validates. Only what the mapping itself needs is checked here; the event contract
 * (types, ranges, known amount types, the backdating window) stays in `validateEvent`, and its
 * answers are named back in the record's own field names by `recordField`.
 */

export type RecordMapping = { ok: true; event: UsageEvent } | { ok: false; field: string; reason: string };

export function usageEventFromRecord(record: unknown, entryTimeMs: number | null): RecordMapping {
  if (typeof record !== 'object' || record === null || Array.isArray(record) || record instanceof Uint8Array) {
    return { ok: false, field: '(record)', reason: 'must be a map' };
  }
  const r = record as Record<string, unknown>;
  if (typeof r.amount_type !== 'string' || r.amount_type === '') {
    return { ok: false, field: 'amount_type', reason: r.amount_type === undefined ? 'required' : 'must be a non-empty string' };
  }
  if (r.amount_value === undefined || r.amount_value === null) return { ok: false, field: 'amount_value', reason: 'required' };
  const timestamp = occurredAt(r.occurred_at, entryTimeMs);
  if (!timestamp.ok) return timestamp;
  const event = {
    uniqueKey: r.unique_key,
    internalInstanceId: r.internal_instance_id,
    timestamp: timestamp.value,
    amounts: { [r.amount_type]: r.amount_value },
    // The Go client sends `"metadata": null` when the caller passed a nil map.
    ...(r.metadata === undefined || r.metadata === null ? {} : { metadata: r.metadata }),
  };
  // The other fields' types are validateEvent's to judge; this is the shape it expects.
  return { ok: true, event: event as UsageEvent };
}

function occurredAt(value: unknown, entryTimeMs: number | null): { ok: true; value: string } | { ok: false; field: string; reason: string } {
  if (value instanceof Date && !Number.isNaN(value.getTime())) return { ok: true, value: value.toISOString() };
  if (typeof value === 'string') {
    // Go writes time.Time as RFC 3339 with up to nine fractional digits and the producer's zone
    // offset; Tally keeps milliseconds (cut, not rounded) in UTC.
    const normalised = canonicalTimestamp(value);
    return normalised ? { ok: true, value: normalised } : { ok: false, field: 'occurred_at', reason: `not an RFC 3339 date-time: ${JSON.stringify(value.slice(0, 64))}` };
  }
  // Generic Fluentd senders put the event's time in the entry rather than the record.
  const absent = value === undefined || value === null;
  if (absent && entryTimeMs !== null) return { ok: true, value: new Date(entryTimeMs).toISOString() };
  return { ok: false, field: 'occurred_at', reason: absent ? 'required (and the entry has no time)' : 'must be an RFC 3339 string' };
}

/** An invalid result of `ingestEvents` (UsageEvent field names) in the record's field names. */
export function recordField(eventField: string): string {
  if (eventField === 'uniqueKey') return 'unique_key';
  if (eventField === 'internalInstanceId') return 'internal_instance_id';
  if (eventField === 'timestamp') return 'occurred_at';
  if (eventField.startsWith('amounts.')) return 'amount_value';
  if (eventField === 'amounts') return 'amount_type';
  return eventField; // metadata, metadata.<key>
}

/** The amount type is the record's field, so an unknown type is that field's fault, not the value's. */
export function recordRejection(eventField: string, reason: string): { field: string; reason: string } {
  const field = eventField.startsWith('amounts.') && reason.startsWith('unknown amount type') ? 'amount_type' : recordField(eventField);
  return { field, reason };
}

export type ForwardRecordStatus = 'accepted' | 'duplicate' | 'conflict' | 'invalid' | 'lost' | 'malformed';

export interface ForwardMetrics {
  records: client.Counter<'status'>;
}

/**
 * `tally_forward_records_total{status}`: accepted, duplicate, conflict and invalid per record as
 * `ingestEvents` (or the mapping) answered; lost for records given up on while Postgres or Temporal
 * stayed down; malformed once per message that could not be decoded (its records are unknown).
 */
export function createForwardMetrics(registry: Registry): ForwardMetrics {
  const name = 'tally_forward_records_total';
  const existing = registry.getSingleMetric(name) as client.Counter<'status'> | undefined;
  return {
    records: existing ?? new client.Counter({
      name,
      help: 'Records received over the Fluentd forward protocol, by result (accepted, duplicate, conflict, invalid, lost, malformed)',
      labelNames: ['status'],
      registers: [registry],
    }),
  };
}
