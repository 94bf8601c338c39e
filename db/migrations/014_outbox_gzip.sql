-- The outbox stores a batch's events gzipped by the API (about 5 KB for 500 events instead of
-- 100 KB of JSON): Postgres no longer validates and pglz-compresses 100 KB per request, the API's
-- socket to Postgres carries a twentieth of it, and the WAL about half of pglz's 9 KB
-- (docs/benchmarks.md). EXTERNAL: out of line when large, never compressed again. Rows written
-- before keep their `json` column;
-- a row has one of the two until its events are pruned. To read one by hand:
--   psql -Atc "SELECT encode(events_gzip, 'base64') FROM ingest_batches WHERE batch_id = '…'" | base64 -d | gunzip
ALTER TABLE ingest_batches ADD COLUMN events_gzip bytea;
ALTER TABLE ingest_batches ALTER COLUMN events_gzip SET STORAGE EXTERNAL;
-- NOT VALID: every existing row has no events_gzip yet, so there is nothing to check, and a large
-- outbox is not scanned under this ALTER's exclusive lock; new and updated rows are checked.
ALTER TABLE ingest_batches ADD CONSTRAINT ingest_batches_one_events_form CHECK (events IS NULL OR events_gzip IS NULL) NOT VALID;
