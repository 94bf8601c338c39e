-- The usual batch in one statement (docs/ingest.md): every key new. Claims each key in each of
-- `weeks` (ascending), fails if a key was claimed in an earlier week of the window (SQLSTATE
-- TK001) or is already claimed in one of `weeks` (unique violation, 23505), and stores the batch's
-- events in the outbox. Called outside a transaction block it is its own transaction: on any
-- failure nothing of it remains, and the API claims the batch key by key in a transaction instead.
CREATE FUNCTION tally_ingest_new_batch(
  weeks date[], keys text[], hashes text[], batch uuid, oldest_week date, outbox_events bytea, outbox_count integer
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT FROM event_keys WHERE claim_week >= oldest_week AND claim_week < weeks[1] AND event_key = ANY(keys)) THEN
    RAISE EXCEPTION 'a key of batch % was claimed in an earlier week', batch USING ERRCODE = 'TK001';
  END IF;
  INSERT INTO event_keys (claim_week, event_key, payload_hash, batch_id)
    SELECT w, k, decode(h, 'hex'), batch FROM unnest(weeks) AS w, unnest(keys, hashes) AS c(k, h) ORDER BY k COLLATE "C", w;
  INSERT INTO ingest_batches (batch_id, events_gzip, event_count) VALUES (batch, outbox_events, outbox_count);
END $$;
