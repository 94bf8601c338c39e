import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { validateEvent, type EventRules } from '../core/usage-event.js';
import { beginAndClaimKeys, ledgerBatch, storeNewBatch, type KeyClaim, type LedgerBatch } from './key-ledger.js';
import { ingestDrainerWorkflowId } from '../core/ingest-drainer.js';
import { OutboxDraft, type OutboxEntry } from '../core/outbox-events.js';
import { isPostgresUnavailable } from '../db/pool.js';
import type { TemporalHealth } from './temporal-health.js';

/** The steps of ingest, in order (docs/ingest.md); a batch of new keys passes 'committed' only (one statement). */
export type CrashPoint = 'keys-claimed' | 'batch-stored' | 'committed';

export type EventResult =
  | { index: number; uniqueKey: string; status: 'accepted' | 'duplicate' | 'conflict' }
  | { index: number; uniqueKey?: string; status: 'invalid'; field: string; reason: string };

/** Where an ingest call spent its time, in ms (docs/ingest.md, "Where a request's time goes"). */
export interface IngestTimings {
  /** Validating and hashing the events, and encoding the outbox row. */
  prepareMs: number;
  /** Asking Temporal whether it answers (usually from the cached probe). */
  temporalMs: number;
  /** Waiting for a Postgres connection from the pool. */
  connectionMs: number;
  /** In Postgres, from the connection in hand to the commit: the one statement, or the key-by-key transaction. */
  storeMs: number;
  /** Which way the batch was stored; null when nothing reached Postgres (every event invalid). */
  path: 'one-statement' | 'key-by-key' | null;
}

export interface IngestOutcome {
  batchId: string | null;
  workflowId: string | null;
  results: EventResult[];
  timings: IngestTimings;
}

/** Postgres or Temporal could not take the batch: nothing was kept, the producer should retry. */
export class IngestUnavailableError extends Error {
  readonly code = 'INGEST_UNAVAILABLE';
  constructor(readonly dependency: 'postgres' | 'temporal', cause: unknown) {
    super(`${dependency} is unavailable: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

export interface IngestDeps {
  db: pg.Pool;
  temporalHealth: Pick<TemporalHealth, 'check'>;
  taskQueue: string;
  rules: EventRules;
  now?: number;
  /** Called at each step of the protocol; tests throw here to stand for a crash at that point. */
  crashPoint?: (point: CrashPoint, batchId: string) => void;
  /**
   * Told, once the batch is stored, where the call's time went and the sum of the accepted events'
   * amounts per amount type (the API's histogram and amounts counter, api/plugins/metrics.ts).
   */
  onStored?: (timings: IngestTimings, acceptedAmounts: Map<string, number>) => void;
}

/**
 * A request's events once validated and encoded: what storing them and answering need, and no
 * more. The events themselves, their payloads and hex hashes are left behind, so that a request
 * waiting on Postgres holds some 50 KB on the JavaScript heap rather than 300 (docs/ingest.md,
 * "What a request holds while it waits").
 */
export interface PreparedBatch {
  /** The answer so far: the invalid events' results; the others are filled in once stored. */
  results: EventResult[];
  /** Each valid key's first occurrence, in request order (its position in these arrays), and its index in the request. */
  keys: string[];
  indexes: number[];
  /** Later occurrences of a key: the first occurrence's position, and whether the payloads match. */
  repeats: { index: number; key: string; first: number; samePayload: boolean }[];
  /** Each amount type's amounts, by position (a hole where an event has none of that type). */
  amountsByType: Map<string, number[]>;
  outbox: OutboxDraft;
  /** Every first occurrence's outbox entry, gzipped: the outbox row of the usual batch. */
  outboxEvents: Buffer;
  ledger: LedgerBatch;
}

/** Exported for the key ledger's floor benchmark (bench/ledger-floor.ts), which times it alone. */
export function prepareBatch(events: readonly unknown[], rules: EventRules, now: number): PreparedBatch {
  const results: EventResult[] = new Array(events.length);
  const positionOf = new Map<string, number>();
  const keys: string[] = [];
  const indexes: number[] = [];
  const hashes: string[] = [];
  const entries: OutboxEntry[] = [];
  const repeats: PreparedBatch['repeats'] = [];
  const amountsByType = new Map<string, number[]>();
  for (let index = 0; index < events.length; index++) {
    const raw = events[index];
    const v = validateEvent(raw, rules, now);
    if (!v.ok) {
      const key = (raw as { uniqueKey?: unknown } | null)?.uniqueKey;
      results[index] = { index, ...(typeof key === 'string' ? { uniqueKey: key } : {}), status: 'invalid', field: v.field, reason: v.reason };
      continue;
    }
    // The first occurrence of a key in the request speaks for it; later ones compare with it.
    const first = positionOf.get(v.event.key);
    if (first !== undefined) {
      repeats.push({ index, key: v.event.key, first, samePayload: hashes[first] === v.payloadHash });
      continue;
    }
    const position = keys.length;
    positionOf.set(v.event.key, position);
    keys.push(v.event.key);
    indexes.push(index);
    hashes.push(v.payloadHash);
    entries.push({ key: v.event.key, payload: v.payload });
    for (const type in v.event.amounts) {
      let column = amountsByType.get(type);
      if (!column) amountsByType.set(type, (column = []));
      column[position] = v.event.amounts[type]!;
    }
  }
  // Entries in request order, so the outbox keeps the events in order. The ledger batch holds the
  // keys sorted (byte order, in SQL): two requests sharing keys lock them in the same order and
  // cannot deadlock.
  const outbox = OutboxDraft.of(entries);
  return { results, keys, indexes, repeats, amountsByType, outbox, outboxEvents: outbox.gzip(), ledger: ledgerBatch(keys, hashes) };
}

/**
 * The durable acknowledgement. Temporal must answer (else 503: nothing is kept); then, in one
 * Postgres transaction, claim the keys and store the accepted events in the outbox, which the
 * drainer workflow takes to BigQuery. A failure before the commit rolls everything back, so the
 * retry succeeds; after it, the retry is a duplicate. docs/ingest.md has each crash point.
 *
 * Not itself async: the events are prepared at once and only the prepared batch waits on Temporal
 * and Postgres, so that nothing here keeps the request's events alive meanwhile (an async
 * function's frame keeps every local across an await). The caller should not hold them either.
 */
export function ingestEvents(events: readonly unknown[], deps: IngestDeps): Promise<IngestOutcome> {
  const now = deps.now ?? Date.now();
  const started = performance.now();
  let prepared: PreparedBatch;
  try {
    prepared = prepareBatch(events, deps.rules, now);
  } catch (err) {
    return Promise.reject(err);
  }
  return storeBatch(prepared, deps, now, started);
}

async function storeBatch(prepared: PreparedBatch, deps: IngestDeps, now: number, started: number): Promise<IngestOutcome> {
  const { results, keys, indexes, outbox, outboxEvents, ledger } = prepared;
  const timings: IngestTimings = { prepareMs: 0, temporalMs: 0, connectionMs: 0, storeMs: 0, path: null };
  let stepStarted = started;
  /** Ms (to a tenth) since the previous step ended. */
  const step = (): number => {
    const at = performance.now();
    const ms = Math.round((at - stepStarted) * 10) / 10;
    stepStarted = at;
    return ms;
  };
  timings.prepareMs = step();
  if (keys.length === 0) return { batchId: null, workflowId: null, results, timings };

  try {
    await deps.temporalHealth.check();
  } catch (err) {
    throw new IngestUnavailableError('temporal', err);
  }
  timings.temporalMs = step();
  const batchId = randomUUID();
  const workflowId = ingestDrainerWorkflowId(deps.taskQueue);
  let client: pg.PoolClient;
  try {
    client = await deps.db.connect();
  } catch (err) {
    if (!isPostgresUnavailable(err)) throw err;
    throw new IngestUnavailableError('postgres', err);
  }
  timings.connectionMs = step();
  const dedupeWindow = { now, windowDays: deps.rules.backdatingWindowDays };
  /** Each key's claim, when the batch was claimed key by key; none when one statement took every key as new. */
  let claims: Map<string, KeyClaim> | undefined;
  /** Positions (in `keys`) of the accepted events, when not all of them were. */
  let acceptedPositions: number[] | undefined;
  try {
    timings.path = 'one-statement';
    if (!(await storeNewBatch(client, batchId, ledger, { events: outboxEvents, count: keys.length }, dedupeWindow))) {
      timings.path = 'key-by-key';
      // Some key is not new (the one statement kept nothing): claim key by key in a transaction.
      claims = await beginAndClaimKeys(client, batchId, ledger, dedupeWindow);
      deps.crashPoint?.('keys-claimed', batchId);
      const positions = keys.flatMap((key, p) => (claims!.get(key) === 'accepted' ? [p] : []));
      if (positions.length < keys.length) acceptedPositions = positions;
      if (positions.length > 0) {
        await client.query('INSERT INTO ingest_batches (batch_id, events_gzip, event_count) VALUES ($1, $2, $3)', [
          batchId, acceptedPositions ? outbox.gzipOf(positions) : outboxEvents, positions.length,
        ]);
        deps.crashPoint?.('batch-stored', batchId);
      }
      await client.query(positions.length > 0 ? 'COMMIT' : 'ROLLBACK');
    }
    deps.crashPoint?.('committed', batchId);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release(true); // a connection that failed mid-transaction is not reused
    // Only an outage is a 503 (retry later); anything else is a bug to see, not to retry.
    if (err instanceof IngestUnavailableError || !isPostgresUnavailable(err)) throw err;
    throw new IngestUnavailableError('postgres', err);
  }
  client.release();
  timings.storeMs = step();
  if (deps.onStored) {
    const acceptedAmounts = new Map<string, number>();
    for (const [type, column] of prepared.amountsByType) {
      let sum = 0;
      let present = false;
      for (const p of acceptedPositions ?? column.keys()) {
        const amount = column[p];
        if (amount !== undefined) (sum += amount), (present = true);
      }
      if (present) acceptedAmounts.set(type, sum);
    }
    deps.onStored(timings, acceptedAmounts);
  }
  keys.forEach((key, p) => {
    const index = indexes[p]!;
    results[index] = { index, uniqueKey: key, status: claims ? claims.get(key)! : 'accepted' };
  });
  for (const r of prepared.repeats) {
    const firstResult = results[indexes[r.first]!]!;
    // A repeat of an accepted or duplicate payload is a duplicate; anything else conflicts.
    results[r.index] = { index: r.index, uniqueKey: r.key, status: r.samePayload && firstResult.status !== 'conflict' ? 'duplicate' : 'conflict' };
  }
  return acceptedPositions?.length === 0 ? { batchId: null, workflowId: null, results, timings } : { batchId, workflowId, results, timings };
}
