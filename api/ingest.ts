import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { validateEvent, type EventRules } from '../core/usage-event.js';
import { beginAndClaimKeys, storeNewBatch, type KeyClaim } from './key-ledger.js';
import { ingestDrainerWorkflowId } from '../core/ingest-drainer.js';
import { encodeOutboxEvents, type OutboxEntry } from '../core/outbox-events.js';
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

/**
 * The durable acknowledgement. Temporal must answer (else 503: nothing is kept); then, in one
 * Postgres transaction, claim the keys and store the accepted events in the outbox, which the
 * drainer workflow takes to BigQuery. A failure before the commit rolls everything back, so the
 * retry succeeds; after it, the retry is a duplicate. docs/ingest.md has each crash point.
 */
export async function ingestEvents(
  events: readonly unknown[],
  deps: {
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
  },
): Promise<IngestOutcome> {
  const now = deps.now ?? Date.now();
  const timings: IngestTimings = { prepareMs: 0, temporalMs: 0, connectionMs: 0, storeMs: 0, path: null };
  let stepStarted = performance.now();
  /** Ms (to a tenth) since the previous step ended. */
  const step = (): number => {
    const at = performance.now();
    const ms = Math.round((at - stepStarted) * 10) / 10;
    stepStarted = at;
    return ms;
  };
  const results: EventResult[] = new Array(events.length);
  // The first occurrence of a key in the request speaks for it; later ones compare with it.
  // Each first occurrence is also its outbox entry (key and canonical payload), should it be accepted.
  const firstByKey = new Map<string, OutboxEntry & { index: number; hash: string; amounts: Record<string, number> }>();
  const repeats: { index: number; key: string; hash: string }[] = [];
  events.forEach((raw, index) => {
    const v = validateEvent(raw, deps.rules, now);
    if (!v.ok) {
      const key = (raw as { uniqueKey?: unknown } | null)?.uniqueKey;
      results[index] = { index, ...(typeof key === 'string' ? { uniqueKey: key } : {}), status: 'invalid', field: v.field, reason: v.reason };
    } else if (firstByKey.has(v.event.key)) {
      repeats.push({ index, key: v.event.key, hash: v.payloadHash });
    } else {
      firstByKey.set(v.event.key, { index, key: v.event.key, hash: v.payloadHash, payload: v.payload, amounts: v.event.amounts });
    }
  });
  if (firstByKey.size === 0) {
    timings.prepareMs = step();
    return { batchId: null, workflowId: null, results, timings };
  }
  // Map order is request order, so the outbox keeps the events in order. The claims insert the
  // keys sorted (byte order, in SQL): two requests sharing keys lock them in the same order and
  // cannot deadlock.
  const firsts = [...firstByKey.values()];
  const outboxEvents = encodeOutboxEvents(firsts);
  timings.prepareMs = step();

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
  let accepted = firsts;
  /** Each key's claim, when the batch was claimed key by key; none when one statement took every key as new. */
  let claims: Map<string, KeyClaim> | undefined;
  try {
    timings.path = 'one-statement';
    if (!(await storeNewBatch(client, batchId, firsts, { events: outboxEvents, count: firsts.length }, dedupeWindow))) {
      timings.path = 'key-by-key';
      // Some key is not new (the one statement kept nothing): claim key by key in a transaction.
      claims = await beginAndClaimKeys(client, batchId, firsts, dedupeWindow);
      deps.crashPoint?.('keys-claimed', batchId);
      accepted = firsts.filter((c) => claims!.get(c.key) === 'accepted');
      if (accepted.length > 0) {
        await client.query('INSERT INTO ingest_batches (batch_id, events_gzip, event_count) VALUES ($1, $2, $3)', [
          batchId, accepted.length === firsts.length ? outboxEvents : encodeOutboxEvents(accepted), accepted.length,
        ]);
        deps.crashPoint?.('batch-stored', batchId);
      }
      await client.query(accepted.length > 0 ? 'COMMIT' : 'ROLLBACK');
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
    for (const c of accepted) for (const type in c.amounts) acceptedAmounts.set(type, (acceptedAmounts.get(type) ?? 0) + c.amounts[type]!);
    deps.onStored(timings, acceptedAmounts);
  }
  for (const c of firsts) results[c.index] = { index: c.index, uniqueKey: c.key, status: claims ? claims.get(c.key)! : 'accepted' };
  for (const r of repeats) {
    const first = firstByKey.get(r.key)!;
    const firstResult = results[first.index]!;
    const same = first.hash === r.hash;
    // A repeat of an accepted or duplicate payload is a duplicate; anything else conflicts.
    results[r.index] = { index: r.index, uniqueKey: r.key, status: same && firstResult.status !== 'conflict' ? 'duplicate' : 'conflict' };
  }
  return accepted.length > 0 ? { batchId, workflowId, results, timings } : { batchId: null, workflowId: null, results, timings };
}
