-- The outbox stores a batch's events gzipped by the API (about 5 KB for 500 events instead of
-- 100 KB of JSON): Postgres no longer validates and pglz-compresses 100 KB per request, and the
-- socket, the WAL and the drainer's reads carry a twentieth of it (docs/benchmarks.md). EXTERNAL:
-- out of line when large, never compressed again. Rows written before keep their `json` column;
-- a row has one of the two until its events are pruned. To read one by hand:
--   psql -Atc "SELECT encode(events_gzip, 'base64') FROM ingest_batches WHERE batch_id = '…'" | base64 -d | gunzip
ALTER TABLE ingest_batches ADD COLUMN events_gzip bytea;
ALTER TABLE ingest_batches ALTER COLUMN events_gzip SET STORAGE EXTERNAL;
ALTER TABLE ingest_batches ADD CONSTRAINT ingest_batches_one_events_form CHECK (events IS NULL OR events_gzip IS NULL);
