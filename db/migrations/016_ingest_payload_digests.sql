-- The usual batch in one statement, as `tally_ingest_new_batch` (migration 015), with the payload
-- hashes as one bytea of 32-byte SHA-256 digests, in the order of `keys`, instead of a text array of
-- hex strings: the API no longer quotes 500 hex strings into an array literal, the request to
-- Postgres is 16 KB shorter, and Postgres neither parses that array nor decodes hex (about 9 % of
-- its CPU for the statement, measured alone: docs/benchmarks.md). A new name, not an overload: an API process of the
-- previous release, still running during a rolling upgrade, calls the old function with untyped
-- parameters, which an overload would make ambiguous. The old function stays until a later
-- migration drops it.
CREATE FUNCTION tally_ingest_new_batch_v2(
  weeks date[], keys text[], digests bytea, batch uuid, oldest_week date, outbox_events bytea, outbox_count integer
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF length(digests) <> 32 * cardinality(keys) THEN
    RAISE EXCEPTION 'batch %: % bytes of digests for % keys', batch, length(digests), cardinality(keys);
  END IF;
  IF EXISTS (SELECT FROM event_keys WHERE claim_week >= oldest_week AND claim_week < weeks[1] AND event_key = ANY(keys)) THEN
    RAISE EXCEPTION 'a key of batch % was claimed in an earlier week', batch USING ERRCODE = 'TK001';
  END IF;
  INSERT INTO event_keys (claim_week, event_key, payload_hash, batch_id)
    SELECT w, k, substring(digests FROM (i::integer - 1) * 32 + 1 FOR 32), batch
    FROM unnest(weeks) AS w, unnest(keys) WITH ORDINALITY AS c(k, i) ORDER BY k COLLATE "C", w;
  INSERT INTO ingest_batches (batch_id, events_gzip, event_count) VALUES (batch, outbox_events, outbox_count);
END $$;

-- Generic plans for the statements inside. Under the default (`auto`), a session may settle on a
-- custom plan for one of them, planned anew at every call over all the ledger's weekly partitions:
-- measured on the statement alone with eight partitions, 6.6 µs of Postgres CPU per key with custom
-- plans, 5.0 with the default, 4.8 with generic ones (docs/benchmarks.md). The generic plans still
-- prune partitions, at executor start.
ALTER FUNCTION tally_ingest_new_batch_v2(date[], text[], bytea, uuid, date, bytea, integer) SET plan_cache_mode = force_generic_plan;
