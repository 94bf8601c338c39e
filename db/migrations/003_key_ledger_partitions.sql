-- The key ledger keeps every accepted key at least as long as an event may be backdated, and
-- expires old keys by dropping whole weeks: it is partitioned by the week (Monday, UTC) of the
-- claim. Uniqueness holds within a week's partition; ingest looks the key up in the earlier
-- weeks kept and, within minutes of a week's edge, claims it in both neighbouring weeks so two
-- claims of one key always meet on one unique index (docs/ingest.md).
CREATE TABLE event_keys_ledger (
  claim_week   date NOT NULL,
  event_key    text NOT NULL,
  payload_hash bytea NOT NULL,
  batch_id     uuid NOT NULL,
  PRIMARY KEY (claim_week, event_key)
) PARTITION BY RANGE (claim_week);
ALTER TABLE event_keys RENAME TO event_keys_v1;
ALTER TABLE event_keys_ledger RENAME TO event_keys;

-- The Monday that starts the week of a day (1970-01-05 was a Monday).
CREATE FUNCTION tally_claim_week(d date) RETURNS date
LANGUAGE sql IMMUTABLE AS $$ SELECT d - ((d - date '1970-01-05') % 7) $$;

CREATE FUNCTION tally_ensure_key_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  w date := tally_claim_week(first_day);
  created integer := 0;
  name text;
BEGIN
  WHILE w <= last_day LOOP
    name := 'event_keys_' || to_char(w, 'YYYYMMDD');
    IF to_regclass(name) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF event_keys FOR VALUES FROM (%L) TO (%L)', name, w, w + 7);
      created := created + 1;
    END IF;
    w := w + 7;
  END LOOP;
  RETURN created;
END $$;

-- Drops the weeks that ended before the given day: every key in them is older than that.
CREATE FUNCTION tally_drop_key_partitions(before_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  part record;
  dropped integer := 0;
BEGIN
  FOR part IN
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'event_keys'::regclass
      AND c.relname ~ '^event_keys_\d{8}$'
      AND to_date(substring(c.relname FROM 12), 'YYYYMMDD') + 7 <= before_day
  LOOP
    EXECUTE format('DROP TABLE %I', part.relname);
    dropped := dropped + 1;
  END LOOP;
  RETURN dropped;
END $$;

-- Keys already claimed move into the ledger, under the week they were received.
SELECT tally_ensure_key_partitions(coalesce((SELECT min(received_at AT TIME ZONE 'UTC')::date FROM event_keys_v1), current_date) - 7, current_date + 14);
INSERT INTO event_keys (claim_week, event_key, payload_hash, batch_id)
  SELECT tally_claim_week((received_at AT TIME ZONE 'UTC')::date), event_key, payload_hash, batch_id FROM event_keys_v1;
DROP TABLE event_keys_v1;
