import type pg from 'pg';
import { addDays, billingDayOf, type BillingDay } from '../core/billing-day.js';

/** How far from a week's edge a claim also goes into the neighbouring week: more than any transaction lasts or clocks drift. */
export const WEEK_EDGE_MS = 5 * 60_000;

/** The Monday (UTC) starting the week of the instant: the key ledger's partition. */
export function claimWeek(instant: number): BillingDay {
  const day = billingDayOf(instant);
  const dow = (new Date(`${day}T00:00:00Z`).getUTCDay() + 6) % 7; // Monday = 0
  return addDays(day, -dow);
}

export type KeyClaim = 'accepted' | 'duplicate' | 'conflict';

const UNIQUE_VIOLATION = '23505';
/** Raised by `tally_ingest_new_batch_v2` when a key was claimed in an earlier week of the window (migrations 015, 016, 017). */
const EARLIER_WEEK_CLAIM = 'TK001';

/**
 * The weeks a claim at `now` goes into (one, or two within `WEEK_EDGE_MS` of an edge; ascending),
 * the oldest week of the window, and the window's weeks before the claim's, which its lookups name
 * one by one (`claim_week = ANY(...)`, migration 017).
 */
export function claimWindow(opts: { now: number; windowDays: number }): { weeks: BillingDay[]; oldestWeek: BillingDay; earlierWeeks: BillingDay[] } {
  const weeks = [...new Set([claimWeek(opts.now - WEEK_EDGE_MS), claimWeek(opts.now), claimWeek(opts.now + WEEK_EDGE_MS)])];
  const oldestWeek = claimWeek(Date.parse(`${addDays(billingDayOf(opts.now), -opts.windowDays - 1)}T00:00:00Z`));
  const earlierWeeks: BillingDay[] = [];
  for (let w = oldestWeek; w < weeks[0]!; w = addDays(w, 7)) earlierWeeks.push(w);
  return { weeks, oldestWeek, earlierWeeks };
}

/**
 * A batch's keys as the ledger claims them: in byte order, with their payload digests (SHA-256,
 * 32 bytes each, in the same order) in one Buffer, which pg sends as binary, rather than a text
 * array of 500 quoted hex strings (docs/benchmarks.md). A request waiting on Postgres holds this
 * and not 500 hex strings (docs/ingest.md, "What a request holds while it waits").
 */
export interface LedgerBatch {
  keys: string[];
  digests: Buffer;
}

const DIGEST_BYTES = 32;

/**
 * Sorts the keys in byte order, as the claims insert them: Postgres then finds the arrays already
 * sorted where it sorts them (the insert's `ORDER BY`, each index scan over `= ANY`). Unsorted, the
 * earlier-week lookup of 500 keys cost it 1.7 ms against 0.5 (docs/benchmarks.md). JavaScript
 * compares UTF-16 code units, which differs from UTF-8's byte order only beyond U+FFFF: a hint,
 * not a rule Postgres relies on. `hashes` are the keys' payload hashes in hex, in the order of `keys`.
 */
export function ledgerBatch(keys: readonly string[], hashes: readonly string[]): LedgerBatch {
  if (hashes.length !== keys.length) throw new Error(`${hashes.length} payload hashes for ${keys.length} keys`);
  const order = keys.map((_, i) => i).sort((a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : 0));
  // One decode of the joined hex: a twentieth of a millisecond for 500 keys, a third of 500 writes.
  const digests = Buffer.from(order.map((i) => hashes[i]).join(''), 'hex');
  if (digests.length !== keys.length * DIGEST_BYTES) throw new Error('a payload hash is not a SHA-256 in hex');
  return { keys: order.map((i) => keys[i]!), digests };
}

/**
 * Keys in the earlier weeks of the window ($5, each week named) that the batch names. Named as a
 * range on the index's first column, the weeks made the scan read every key they held
 * (migration 017, docs/benchmarks.md).
 */
const EARLIER_WEEKS = `SELECT event_key FROM event_keys WHERE claim_week = ANY($5::date[]) AND event_key = ANY($2::text[])`;

/**
 * Any batch: claims the keys that are free in every week of $1, and answers the ones claimed before.
 * $3 holds the keys' payload digests, 32 bytes each in the order of $2 (`LedgerBatch`). Its
 * insert and earlier-week lookup are those of `tally_ingest_new_batch_v2` (migrations 016, 017), with
 * `ON CONFLICT`: a change to how a key is claimed goes into both (the first version, which a
 * process of an older release may still call, calls the second since migration 017).
 */
const CLAIM_KEYS = `WITH input AS (SELECT k, substring($3::bytea FROM (i::integer - 1) * 32 + 1 FOR 32) AS h
                   FROM unnest($2::text[]) WITH ORDINALITY AS c(k, i)),
     claimed AS (INSERT INTO event_keys (claim_week, event_key, payload_hash, batch_id)
         SELECT w, k, h, $4 FROM unnest($1::date[]) AS w, input ORDER BY k COLLATE "C", w
         ON CONFLICT (claim_week, event_key) DO NOTHING RETURNING event_key)
     SELECT k AS event_key FROM input
     WHERE k NOT IN (SELECT event_key FROM claimed GROUP BY event_key HAVING count(*) = cardinality($1::date[]))
     UNION
     ${EARLIER_WEEKS}`;

/**
 * The usual batch, every key new: one statement (`tally_ingest_new_batch_v2`, migration 016), sent
 * outside any transaction block so that it is its own transaction, claims every key and stores the
 * batch's events in the outbox, with one round trip. It claims with a plain `INSERT`, which costs
 * Postgres about 40 % less than `ON CONFLICT DO NOTHING` (docs/benchmarks.md). Answers false, having
 * kept nothing, when a key is not new (claimed this week, or in an earlier week of the window):
 * the caller then claims key by key with `beginAndClaimKeys`.
 */
export async function storeNewBatch(
  client: pg.PoolClient,
  batchId: string,
  batch: LedgerBatch,
  outbox: { events: Buffer; count: number },
  opts: { now: number; windowDays: number },
): Promise<boolean> {
  const { weeks, oldestWeek } = claimWindow(opts);
  try {
    await client.query({
      name: 'tally-ingest-new-batch-v2',
      text: 'SELECT tally_ingest_new_batch_v2($1, $2, $3, $4, $5, $6, $7)',
      values: [weeks, batch.keys, batch.digests, batchId, oldestWeek, outbox.events, outbox.count],
    });
    return true;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === UNIQUE_VIOLATION || code === EARLIER_WEEK_CLAIM) return false;
    throw err;
  }
}

/**
 * Begins a transaction on the client and claims the event keys as its first statement; the caller
 * goes on in that transaction and ends it. A key is `accepted` when no earlier claim exists within the dedupe window;
 * otherwise the stored payload hash tells `duplicate` from `conflict`. The window: the current
 * claim week(s) through unique indexes (a concurrent claim waits for the other transaction to
 * end), and the earlier weeks kept through a lookup (their writers finished long ago).
 * The statement is prepared once per connection and answers only the keys that are not new.
 */
export async function beginAndClaimKeys(
  client: pg.PoolClient,
  batchId: string,
  batch: LedgerBatch,
  opts: { now: number; windowDays: number },
): Promise<Map<string, KeyClaim>> {
  const { weeks, earlierWeeks } = claimWindow(opts);
  const { keys, digests } = batch;
  await client.query('BEGIN');
  const { rows } = await client.query<{ event_key: string }>({
    name: 'tally-claim-keys-v2', text: CLAIM_KEYS, values: [weeks, keys, digests, batchId, earlierWeeks],
  });
  const notNewKeys = new Set(rows.map((r) => r.event_key));
  const notNew = keys.filter((k) => notNewKeys.has(k));
  const result = new Map<string, KeyClaim>();
  for (const k of keys) if (!notNewKeys.has(k)) result.set(k, 'accepted');
  if (notNew.length === 0) return result;
  // Undo this batch's partial claims, then compare with the claim that was there first.
  await client.query('DELETE FROM event_keys WHERE claim_week = ANY($1) AND event_key = ANY($2) AND batch_id = $3', [
    weeks, notNew, batchId,
  ]);
  const stored = new Map(
    (await client.query<{ event_key: string; payload_hash: string }>(
      `SELECT DISTINCT ON (event_key) event_key, encode(payload_hash, 'hex') AS payload_hash FROM event_keys
       WHERE claim_week = ANY($1::date[]) AND event_key = ANY($2)`,
      [[...earlierWeeks, ...weeks], notNew],
    )).rows.map((r) => [r.event_key, r.payload_hash]),
  );
  keys.forEach((k, i) => {
    if (notNewKeys.has(k)) result.set(k, stored.get(k) === digests.toString('hex', i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES) ? 'duplicate' : 'conflict');
  });
  return result;
}
