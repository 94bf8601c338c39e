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

/** Keys in the earlier weeks of the window ($5 ≤ week < $6) that the batch names. */
const EARLIER_WEEKS = `SELECT event_key FROM event_keys WHERE claim_week >= $5 AND claim_week < $6 AND event_key = ANY($2::text[])`;

/** The batch's keys with their payload hashes (hex), and the insert that claims each in every week of $1. */
const INPUT = `input AS (SELECT k, h FROM unnest($2::text[], $3::text[]) AS c(k, h))`;
const INSERT_CLAIMS = `INSERT INTO event_keys (claim_week, event_key, payload_hash, batch_id)
         SELECT w, k, decode(h, 'hex'), $4 FROM unnest($1::date[]) AS w, input ORDER BY k COLLATE "C", w`;

/** The usual case: every key is new this week. Fails with a unique violation otherwise. */
const CLAIM_NEW_KEYS = `WITH ${INPUT}, claimed AS (${INSERT_CLAIMS})
     ${EARLIER_WEEKS}`;

/** Any batch: claims the keys that are free, and answers the ones claimed before. */
const CLAIM_KEYS = `WITH ${INPUT}, claimed AS (${INSERT_CLAIMS} ON CONFLICT (claim_week, event_key) DO NOTHING RETURNING event_key)
     SELECT k AS event_key FROM input
     WHERE k NOT IN (SELECT event_key FROM claimed GROUP BY event_key HAVING count(*) = cardinality($1::date[]))
     UNION
     ${EARLIER_WEEKS}`;

/**
 * Begins a transaction on the client and claims the event keys as its first statement; the caller
 * goes on in that transaction and ends it. A key is `accepted` when no earlier claim exists within the dedupe window;
 * otherwise the stored payload hash tells `duplicate` from `conflict`. The window: the current
 * claim week(s) through unique indexes (a concurrent claim waits for the other transaction to
 * end), and the earlier weeks kept through a lookup (their writers finished long ago).
 *
 * A producer's batch is new keys, so the claim first tries a plain insert, which costs Postgres
 * about 40 % less than `ON CONFLICT DO NOTHING` (docs/benchmarks.md). If any key is already
 * claimed this week the insert fails as a whole; the transaction holds nothing else (this function
 * began it), so it is rolled back and begun again, and the keys are claimed with `ON CONFLICT`,
 * which answers the taken ones.
 */
export async function beginAndClaimKeys(
  client: pg.PoolClient,
  batchId: string,
  keys: readonly { key: string; /** SHA-256 of the payload, hex */ hash: string }[],
  opts: { now: number; windowDays: number },
): Promise<Map<string, KeyClaim>> {
  const weeks = [...new Set([claimWeek(opts.now - WEEK_EDGE_MS), claimWeek(opts.now), claimWeek(opts.now + WEEK_EDGE_MS)])];
  const oldestWeek = claimWeek(Date.parse(`${addDays(billingDayOf(opts.now), -opts.windowDays - 1)}T00:00:00Z`));
  const values = [weeks, keys.map((k) => k.key), keys.map((k) => k.hash), batchId, oldestWeek, weeks[0]];
  // Each statement is prepared once per connection and answers only the keys that are not new
  // (claimed before in these weeks, or found in an earlier week of the window): usually none.
  let rows: { event_key: string }[];
  await client.query('BEGIN');
  try {
    ({ rows } = await client.query<{ event_key: string }>({ name: 'tally-claim-new-keys', text: CLAIM_NEW_KEYS, values }));
  } catch (err) {
    if ((err as { code?: unknown }).code !== UNIQUE_VIOLATION) throw err;
    await client.query('ROLLBACK');
    await client.query('BEGIN');
    ({ rows } = await client.query<{ event_key: string }>({ name: 'tally-claim-keys', text: CLAIM_KEYS, values }));
  }
  const notNewKeys = new Set(rows.map((r) => r.event_key));
  const notNew = keys.filter((k) => notNewKeys.has(k.key));
  const result = new Map<string, KeyClaim>();
  for (const k of keys) if (!notNewKeys.has(k.key)) result.set(k.key, 'accepted');
  if (notNew.length === 0) return result;
  // Undo this batch's partial claims, then compare with the claim that was there first.
  await client.query('DELETE FROM event_keys WHERE claim_week = ANY($1) AND event_key = ANY($2) AND batch_id = $3', [
    weeks, notNew.map((k) => k.key), batchId,
  ]);
  const stored = new Map(
    (await client.query<{ event_key: string; payload_hash: string }>(
      "SELECT DISTINCT ON (event_key) event_key, encode(payload_hash, 'hex') AS payload_hash FROM event_keys WHERE claim_week >= $1 AND event_key = ANY($2)",
      [oldestWeek, notNew.map((k) => k.key)],
    )).rows.map((r) => [r.event_key, r.payload_hash]),
  );
  for (const k of notNew) result.set(k.key, stored.get(k.key) === k.hash ? 'duplicate' : 'conflict');
  return result;
}
