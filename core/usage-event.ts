import { Type, type Static } from '@sinclair/typebox';
import { FormatRegistry } from '@sinclair/typebox';
import { hash } from 'node:crypto';
import type { BillingDay } from './billing-day.js';

/** The longest unique key and instance id, metadata name and value, in UTF-16 code units (as `maxLength` counts). */
const ID_MAX = 256;
const METADATA_NAME_MAX = 128;
const METADATA_VALUE_MAX = 1024;
/** The most metadata entries an event may carry (`EventRules.maxMetadataEntries` in production). */
export const METADATA_ENTRIES_MAX = 64;

// TypeBox checks this format where the schema is compiled (tests, OpenAPI tools); validateEvent uses parseInstant directly.
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => parseInstant(v) !== undefined);

/** One usage report: what a producer's `addAmounts(uniqueKey, instanceId, timestamp, amounts, metadata)` sends. */
export const UsageEventSchema = Type.Object(
  {
    uniqueKey: Type.String({ minLength: 1, maxLength: ID_MAX, description: 'Idempotency key of the event: a retry with the same key is a duplicate.' }),
    internalInstanceId: Type.String({ minLength: 1, maxLength: ID_MAX, description: 'The customer instance the usage belongs to.' }),
    timestamp: Type.String({ format: 'date-time', description: 'When the usage happened (RFC 3339).' }),
    amounts: Type.Record(Type.String(), Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }), {
      description: 'Amount type → non-negative integer quantity; all of them are accepted or none.',
    }),
    metadata: Type.Optional(Type.Record(Type.String(), Type.String({ maxLength: METADATA_VALUE_MAX }), {
      description: `Free-form labels carried to BigQuery: at most ${METADATA_ENTRIES_MAX} entries, names of 1–${METADATA_NAME_MAX} characters, values of at most ${METADATA_VALUE_MAX}.`,
    })),
  },
  { additionalProperties: false },
);
export type UsageEvent = Static<typeof UsageEventSchema>;

/** An accepted event as stored in the outbox and written to BigQuery. */
export interface AcceptedEvent {
  key: string;
  instanceId: string;
  occurredAt: string;
  day: BillingDay;
  amounts: Record<string, number>;
  metadata: Record<string, string>;
}

export type EventValidation =
  | { ok: true; event: AcceptedEvent; payloadHash: string; /** canonicalPayload(event): what the hash is of, and what the outbox stores */ payload: string }
  | { ok: false; field: string; reason: string };

export interface EventRules {
  amountTypes: ReadonlyMap<string, string>;
  backdatingWindowDays: number;
  /** How far ahead of the server's clock an event may be dated. */
  futureToleranceMs: number;
  maxMetadataEntries: number;
}

const DAY_MS = 86_400_000;
const EVENT_FIELDS: ReadonlySet<string> = new Set(Object.keys(UsageEventSchema.properties));

type Invalid = { ok: false; field: string; reason: string };
const invalid = (field: string, reason: string): Invalid => ({ ok: false, field, reason });

/**
 * An event judged (`checkEvent`) and, when valid, its canonical payload and the payload's SHA-256:
 * what the key ledger compares a repeated key by, and what the outbox stores.
 */
export function validateEvent(input: unknown, rules: EventRules, now: number): EventValidation {
  const checked = checkEvent(input, rules, now);
  if (!checked.ok) return checked;
  const payload = canonicalPayload(checked.event);
  // The one-shot hash: no Hash object per event (a third less time over a 500-event batch).
  return { ok: true, event: checked.event, payload, payloadHash: hash('sha256', payload, 'hex') };
}

/**
 * Judges one event against the contract: the shape of `UsageEventSchema`, then the rules (the
 * window, the known amount types, metadata bounds, text Postgres can keep), reporting the first
 * field at fault, and gives the event in its normal form (the instant in UTC, records in key
 * order). Written by hand in one pass rather than with TypeBox's compiled check, which is
 * kept for the OpenAPI document and, in test/usage-event.test.ts, as the yardstick this agrees
 * with: the check walked each record with `Object.entries` and a `/^(.*)$/` key pattern, which
 * lets a name holding a line break through unchecked (a metadata value that was not a string then
 * threw, failing the whole request), and the timestamp was parsed twice, besides a regular expression (docs/ingest.md).
 * Validation alone, without the payload hash (the dedupe's work): the ingest benchmark's baseline
 * calls this, "a bare endpoint that only parses and validates" (docs/benchmarks.md).
 */
export function checkEvent(input: unknown, rules: EventRules, now: number): { ok: true; event: AcceptedEvent } | Invalid {
  if (!isMap(input)) return invalid('(event)', 'must be a JSON object');
  const event = input as Record<string, unknown>;
  const key = event.uniqueKey;
  const keyReason = idReason(key);
  if (keyReason !== undefined) return invalid('uniqueKey', keyReason);
  const instanceId = event.internalInstanceId;
  const instanceReason = idReason(instanceId);
  if (instanceReason !== undefined) return invalid('internalInstanceId', instanceReason);
  const timestamp = event.timestamp;
  if (typeof timestamp !== 'string') return invalid('timestamp', timestamp === undefined ? 'required' : 'must be an RFC 3339 date-time string');
  const occurred = parseInstant(timestamp);
  if (occurred === undefined) {
    return invalid('timestamp', `not an RFC 3339 date-time (a real calendar date and a time of 00:00:00–23:59:59): ${JSON.stringify(timestamp.slice(0, 64))}`);
  }
  if (occurred < now - rules.backdatingWindowDays * DAY_MS) {
    return invalid('timestamp', `older than the backdating window of ${rules.backdatingWindowDays} days`);
  }
  if (occurred > now + rules.futureToleranceMs) {
    return invalid('timestamp', `more than ${rules.futureToleranceMs / 60_000} minutes in the future`);
  }
  const amounts = event.amounts;
  if (!isMap(amounts)) return invalid('amounts', amounts === undefined ? 'required' : 'must be an object of amount type → non-negative integer');
  const types = Object.keys(amounts);
  for (const type of types) {
    const value = (amounts as Record<string, unknown>)[type];
    if (!Number.isSafeInteger(value) || (value as number) < 0) {
      return invalid(`amounts.${type}`, `must be a non-negative integer of at most ${Number.MAX_SAFE_INTEGER}`);
    }
  }
  const metadata = event.metadata === undefined ? {} : event.metadata;
  if (!isMap(metadata)) return invalid('metadata', 'must be an object of name → string');
  const metadataKeys = Object.keys(metadata);
  for (const name of metadataKeys) {
    const value = (metadata as Record<string, unknown>)[name];
    if (typeof value !== 'string') return invalid(`metadata.${name}`, 'must be a string');
    if (value.length > METADATA_VALUE_MAX) return invalid(`metadata.${name}`, `must be at most ${METADATA_VALUE_MAX} characters long`);
  }
  for (const field in event) {
    if (!EVENT_FIELDS.has(field)) return invalid(field, `not a field of an event (${[...EVENT_FIELDS].join(', ')})`);
  }
  // The shape is right; now the rules.
  if (types.length === 0) return invalid('amounts', 'must hold at least one amount');
  const unknown = types.find((t) => !rules.amountTypes.has(t));
  if (unknown !== undefined) {
    return invalid(`amounts.${unknown}`, `unknown amount type; accepted: ${[...rules.amountTypes.keys()].join(', ')}`);
  }
  if (metadataKeys.length > rules.maxMetadataEntries) return invalid('metadata', `more than ${rules.maxMetadataEntries} entries`);
  const keyText = unkeepable(key as string);
  if (keyText !== undefined) return invalid('uniqueKey', keyText);
  const instanceText = unkeepable(instanceId as string);
  if (instanceText !== undefined) return invalid('internalInstanceId', instanceText);
  for (const name of metadataKeys) {
    if (name.length === 0 || name.length > METADATA_NAME_MAX) {
      return invalid(`metadata.${name.slice(0, 32)}${name.length > 32 ? '…' : ''}`, `a metadata name must be 1–${METADATA_NAME_MAX} characters long`);
    }
    const reason = unkeepable(name) ?? unkeepable((metadata as Record<string, string>)[name]!);
    if (reason !== undefined) return invalid(`metadata.${name}`, reason);
  }
  const occurredAt = canonicalInstant(timestamp, occurred);
  const accepted: AcceptedEvent = {
    key: key as string,
    instanceId: instanceId as string,
    occurredAt,
    day: occurredAt.slice(0, 10) as BillingDay,
    amounts: sortedRecord(amounts as Record<string, number>, types),
    metadata: sortedRecord(metadata as Record<string, string>, metadataKeys),
  };
  return { ok: true, event: accepted };
}

/** A JSON object (or msgpack map): not null, an array, a date or bytes. */
function isMap(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date) && !(value instanceof Uint8Array);
}

function idReason(value: unknown): string | undefined {
  if (value === undefined) return 'required';
  if (typeof value !== 'string') return 'must be a string';
  return value.length < 1 || value.length > ID_MAX ? `must be 1–${ID_MAX} characters long` : undefined;
}

const digit = (s: string, at: number): number => {
  const d = s.charCodeAt(at) - 48;
  return d >= 0 && d <= 9 ? d : NaN;
};
const PLACES = [100, 10, 1];
const twoDigits = (s: string, at: number): number => digit(s, at) * 10 + digit(s, at + 1);

/**
 * The instant (ms since the epoch) an RFC 3339 date-time names, or undefined when it is not one:
 * `YYYY-MM-DD` then `T`, `t` or a space, `hh:mm:ss`, an optional fraction of any length (Tally
 * keeps milliseconds, cut rather than rounded: 23:59:59.9999 stays on its day) and `Z`, `z` or
 * `±hh:mm`. The date must exist and the hour be 00–23: `Date.parse` alone would take 2026-02-30 as
 * 2026-03-02 and 24:00 as the next day. The same instant as `Date.parse` for all it accepts.
 */
export function parseInstant(s: string): number | undefined {
  const n = s.length;
  if (n < 20 || s[4] !== '-' || s[7] !== '-' || s[13] !== ':' || s[16] !== ':') return undefined;
  const separator = s[10];
  if (separator !== 'T' && separator !== 't' && separator !== ' ') return undefined;
  const year = twoDigits(s, 0) * 100 + twoDigits(s, 2);
  const month = twoDigits(s, 5);
  const day = twoDigits(s, 8);
  const hour = twoDigits(s, 11);
  const minute = twoDigits(s, 14);
  const second = twoDigits(s, 17);
  // NaN (a non-digit) fails every comparison below.
  if (!(month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month) && hour <= 23 && minute <= 59 && second <= 59)) return undefined;
  let at = 19;
  let millis = 0;
  if (s[at] === '.') {
    const digits = ++at;
    for (; at < n && digit(s, at) >= 0; at++) if (at - digits < 3) millis += digit(s, at) * PLACES[at - digits]!;
    if (at === digits) return undefined;
  }
  let offsetMinutes = 0;
  const zone = s[at];
  if (zone === 'Z' || zone === 'z') {
    if (at + 1 !== n) return undefined;
  } else if (zone === '+' || zone === '-') {
    if (at + 6 !== n || s[at + 3] !== ':') return undefined;
    const hours = twoDigits(s, at + 1);
    const minutes = twoDigits(s, at + 4);
    if (!(hours <= 23 && minutes <= 59)) return undefined;
    offsetMinutes = (zone === '+' ? 1 : -1) * (hours * 60 + minutes);
  } else {
    return undefined;
  }
  let ms = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  if (year < 100) ms = new Date(ms).setUTCFullYear(year); // Date.UTC reads 0–99 as 1900–1999
  return ms - offsetMinutes * 60_000;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** An RFC 3339 date-time in Tally's spelling (UTC, milliseconds: `toISOString`), or undefined when it is not one (parseInstant). */
export function canonicalTimestamp(text: string): string | undefined {
  const ms = parseInstant(text);
  return ms === undefined ? undefined : canonicalInstant(text, ms);
}

/**
 * `new Date(ms).toISOString()` for a timestamp parseInstant accepted: spelled from the text when it
 * is in UTC (most are; `toISOString` took 262 µs of the 1,782 of a 500-event batch's validation in one micro-benchmark).
 */
function canonicalInstant(timestamp: string, ms: number): string {
  const last = timestamp[timestamp.length - 1];
  if (last !== 'Z' && last !== 'z') return new Date(ms).toISOString();
  const fraction = timestamp[19] === '.' ? timestamp.slice(20, Math.min(23, timestamp.length - 1)).padEnd(3, '0') : '000';
  return `${timestamp.slice(0, 10)}T${timestamp.slice(11, 19)}.${fraction}Z`;
}

/**
 * An accepted event's payload as canonical JSON, `[instanceId, occurredAt, amounts, metadata]`:
 * the same for the same payload whatever the key order or timestamp spelling the producer used.
 * Its SHA-256 (`payloadHash`, in hex: the form the key claim sends to Postgres) tells a duplicate
 * from a conflict; the outbox stores the string itself (core/outbox-events.ts), so an event is
 * serialized once.
 */
export function canonicalPayload(event: AcceptedEvent): string {
  return JSON.stringify([event.instanceId, event.occurredAt, event.amounts, event.metadata]);
}

/**
 * Why a string cannot be kept exactly as sent, or undefined. Postgres's text cannot hold U+0000,
 * and a lone UTF-16 surrogate (which JSON's `\ud800` escapes can spell) becomes U+FFFD in UTF-8:
 * two keys differing only there would be claimed as one, and the second event lost as a duplicate.
 * The forward protocol's msgpack strings that are not UTF-8 arrive with such surrogates too
 * (api/forward/decode.ts, `utf8Text`).
 */
function unkeepable(value: string): string | undefined {
  if (!value.isWellFormed()) return 'is not well-formed Unicode (it holds a lone UTF-16 surrogate, or bytes that are not UTF-8)';
  if (value.includes('\u0000')) return 'holds U+0000 (NUL), which the billing database cannot store';
  return undefined;
}

function sortedRecord<T>(record: Record<string, T>, keys: readonly string[]): Record<string, T> {
  // Most events carry one or two keys already in order: skip the rebuild then.
  if (keys.every((k, i) => i === 0 || keys[i - 1]! < k)) return record;
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
