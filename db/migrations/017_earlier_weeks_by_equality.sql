-- The lookup of a batch's keys in the earlier weeks of the dedupe window read every key of those
-- weeks. The ledger's index is (claim_week, event_key), and the lookup named the weeks as a range
-- (`claim_week >= oldest_week AND claim_week < weeks[1]`): with a range on the index's first column
-- a B-tree scan cannot descend to each key, so it read the whole of every earlier week's index (or
-- the planner chose a sequential scan), whatever the batch. With the window's earlier weeks empty,
-- as in a young deployment, the tests and the benchmark, nobody saw it; with five weeks of 4 million
-- keys each, one lookup of 500 keys took 1.3 s (a sequential scan of 20 million keys) against
-- 1.4 ms by equality (docs/benchmarks.md).
-- Each week is now named by equality (`claim_week = ANY(...)`), so the scan descends to each key
-- in each week, and partitions outside the list are pruned.

-- The Mondays from `first_week` (a Monday) up to, not including, `before_week`: the claim weeks
-- between them, to name by equality (the API's own statements get the list from the API,
-- api/key-ledger.ts `claimWindow`).
CREATE FUNCTION tally_claim_weeks(first_week date, before_week date) RETURNS date[]
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT coalesce(array_agg(w::date ORDER BY w), '{}') FROM generate_series(first_week, before_week - 1, interval '7 days') AS w
$$;

-- The same function, its earlier-week lookup by equality; the signature is unchanged, so an API
-- process of the previous release calls it as before.
CREATE OR REPLACE FUNCTION tally_ingest_new_batch_v2(
  weeks date[], keys text[], digests bytea, batch uuid, oldest_week date, outbox_events bytea, outbox_count integer
) RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  -- Once, into a variable: written into the condition the function ran once per partition scanned.
  earlier date[] := tally_claim_weeks(oldest_week, weeks[1]);
BEGIN
  IF length(digests) <> 32 * cardinality(keys) THEN
    RAISE EXCEPTION 'batch %: % bytes of digests for % keys', batch, length(digests), cardinality(keys);
  END IF;
  IF EXISTS (SELECT FROM event_keys WHERE claim_week = ANY(earlier) AND event_key = ANY(keys)) THEN
    RAISE EXCEPTION 'a key of batch % was claimed in an earlier week', batch USING ERRCODE = 'TK001';
  END IF;
  INSERT INTO event_keys (claim_week, event_key, payload_hash, batch_id)
    SELECT w, k, substring(digests FROM (i::integer - 1) * 32 + 1 FOR 32), batch
    FROM unnest(weeks) AS w, unnest(keys) WITH ORDINALITY AS c(k, i) ORDER BY k COLLATE "C", w;
  INSERT INTO ingest_batches (batch_id, events_gzip, event_count) VALUES (batch, outbox_events, outbox_count);
END $$;

-- The first version, for a process of a release before migration 016 that may still call it
-- during an upgrade (dropping it would fail that process's requests instead): now the second
-- version with its hex hashes joined into digests, so the claim is written in one function.
CREATE OR REPLACE FUNCTION tally_ingest_new_batch(
  weeks date[], keys text[], hashes text[], batch uuid, oldest_week date, outbox_events bytea, outbox_count integer
) RETURNS void
LANGUAGE sql AS $$
  SELECT tally_ingest_new_batch_v2(weeks, keys, decode(array_to_string(hashes, ''), 'hex'), batch, oldest_week, outbox_events, outbox_count)
$$;
