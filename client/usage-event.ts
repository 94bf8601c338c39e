import { BillingClientError } from './errors.js';

/**
 * One event as the ingest API takes it (POST /v1/events, the UsageEvent schema in the API's
 * OpenAPI document). The client keeps its own copy of the shape so that producers embed the
 * client without the server's schema library.
 */
export interface WireEvent {
  uniqueKey: string;
  internalInstanceId: string;
  /** RFC 3339, UTC. */
  timestamp: string;
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
 */
export function buildEvent(
  uniqueKey: string,
  internalInstanceId: string,
  timestamp: Date,
  amounts: Record<string, number>,
  metadata?: Record<string, string>,
): WireEvent {
  if (typeof uniqueKey !== 'string' || uniqueKey.length === 0) throw invalid('uniqueKey', 'must be a non-empty string');
  if (uniqueKey.length > MAX_ID_LENGTH) throw invalid('uniqueKey', `must be at most ${MAX_ID_LENGTH} characters`);
  if (typeof internalInstanceId !== 'string' || internalInstanceId.length === 0) {
    throw invalid('internalInstanceId', 'must be a non-empty string');
  }
  if (internalInstanceId.length > MAX_ID_LENGTH) throw invalid('internalInstanceId', `must be at most ${MAX_ID_LENGTH} characters`);
  if (!(timestamp instanceof Date) || Number.isNaN(timestamp.getTime())) throw invalid('timestamp', 'must be a valid Date');
  if (amounts === null || typeof amounts !== 'object') throw invalid('amounts', 'must be an object of amount type → integer');
  const amountsCopy: Record<string, number> = {};
  for (const [type, value] of Object.entries(amounts)) {
    // Quantities are integers end to end: a fraction here would be a rounding decision nobody made.
    if (!Number.isSafeInteger(value) || value < 0) {
      throw invalid(`amounts.${type}`, `must be a non-negative integer, got ${String(value)}`);
    }
    amountsCopy[type] = value;
  }
  if (Object.keys(amountsCopy).length === 0) throw invalid('amounts', 'must hold at least one amount');
  const event: WireEvent = { uniqueKey, internalInstanceId, timestamp: timestamp.toISOString(), amounts: amountsCopy };
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object') throw invalid('metadata', 'must be an object of string → string');
    const metadataCopy: Record<string, string> = {};
    for (const [name, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') throw invalid(`metadata.${name}`, `must be a string, got ${typeof value}`);
      metadataCopy[name] = value;
    }
    event.metadata = metadataCopy;
  }
  return event;
}
