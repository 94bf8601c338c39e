import { BillingClientError } from './errors.js';

/**
 * One event as the ingest API takes it (POST /v1/events, the UsageEvent schema in the API's
 * OpenAPI document). The client keeps its own copy of the shape so that producers embed the
 * client without the server's schema library.
 */
export interface WireEvent {
  uniqueKey: string;
  internalInstanceId: string;
  /**
   * When the usage happened: a Date (a copy of the caller's) until it is serialised, where
   * Date.toJSON writes RFC 3339 UTC; a string once read back from a spill file. Formatting at
   * send time keeps toISOString off the addAmounts path.
   */
  timestamp: Date | string;
  /** Amount type → non-negative integer quantity. */
  amounts: Record<string, number>;
  metadata?: Record<string, string>;
}

// The server's limits, checked here too because they are cheap and a producer bug is better
// reported at the call site than as an `invalid` result a second later.
const MAX_ID_LENGTH = 256;

function invalid(argument: string, message: string): BillingClientError {
  return new BillingClientError('INVALID_ARGUMENT', `addAmounts: ${argument} ${message}`, argument);
}

/**
 * Checks what can be checked without the server and copies the caller's objects, so that a
 * producer reusing its `amounts` object after the call cannot change an event already buffered.
 * This is the addAmounts hot path: for..in rather than Object.entries (no arrays per call).
 */
export function buildEvent(
  uniqueKey: string,
  internalInstanceId: string,
  timestamp: Date,
  amounts: Partial<Record<string, number>>,
  metadata?: Record<string, string>,
): WireEvent {
  // A blank key would collide with every other blank key in the server's dedupe ledger.
  if (typeof uniqueKey !== 'string' || isBlank(uniqueKey)) throw invalid('uniqueKey', 'must be a non-blank string');
  if (uniqueKey.length > MAX_ID_LENGTH) throw invalid('uniqueKey', `must be at most ${MAX_ID_LENGTH} characters`);
  if (typeof internalInstanceId !== 'string' || isBlank(internalInstanceId)) {
    throw invalid('internalInstanceId', 'must be a non-blank string');
  }
  if (internalInstanceId.length > MAX_ID_LENGTH) throw invalid('internalInstanceId', `must be at most ${MAX_ID_LENGTH} characters`);
  if (!keepable(uniqueKey)) throw invalid('uniqueKey', NOT_KEPT);
  if (!keepable(internalInstanceId)) throw invalid('internalInstanceId', NOT_KEPT);
  if (!(timestamp instanceof Date)) throw invalid('timestamp', 'must be a valid Date');
  const ms = timestamp.getTime();
  // toISOString's own range: ±8.64e15 ms; a NaN or out-of-range Date could not be sent.
  if (!(Math.abs(ms) <= 8.64e15)) throw invalid('timestamp', 'must be a valid Date');
  if (amounts === null || typeof amounts !== 'object') throw invalid('amounts', 'must be an object of amount type → integer');
  const amountsCopy: Record<string, number> = {};
  let types = 0;
  for (const type in amounts) {
    const value = amounts[type];
    // Quantities are integers end to end: a fraction here would be a rounding decision nobody made.
    if (value === undefined || !Number.isSafeInteger(value) || value < 0) {
      throw invalid(`amounts.${type}`, `must be a non-negative integer, got ${String(value)}`);
    }
    amountsCopy[type] = value;
    types++;
  }
  if (types === 0) throw invalid('amounts', 'must hold at least one amount');
  const event: WireEvent = { uniqueKey, internalInstanceId, timestamp: new Date(ms), amounts: amountsCopy };
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object') throw invalid('metadata', 'must be an object of string → string');
    const metadataCopy: Record<string, string> = {};
    for (const name in metadata) {
      const value = metadata[name];
      if (typeof value !== 'string') throw invalid(`metadata.${name}`, `must be a string, got ${typeof value}`);
      if (!keepable(name) || !keepable(value)) throw invalid(`metadata.${name}`, NOT_KEPT);
      metadataCopy[name] = value;
    }
    event.metadata = metadataCopy;
  }
  return event;
}

const NOT_KEPT = 'must be well-formed Unicode without U+0000 (the server refuses lone surrogates and NUL: they cannot be stored as sent)';

/** What the server keeps exactly as sent (its validation says the same: docs/ingest.md). */
function keepable(text: string): boolean {
  return text.isWellFormed() && !text.includes('\u0000');
}

function isBlank(text: string): boolean {
  // Most keys start with a visible ASCII character: decided without trim()'s copy.
  const first = text.charCodeAt(0);
  if (first > 32 && first < 127) return false;
  return text.trim().length === 0;
}
