-- Outbox retention (docs/ingest.md): a written batch keeps its events for OUTBOX_RETENTION_DAYS
-- (a replay source), then only its record (counts, times, who wrote it) until the backdating
-- window has passed, so GET /v1/batches/{id} answers as long as the key ledger remembers the keys.
ALTER TABLE ingest_batches ALTER COLUMN events DROP NOT NULL;
ALTER TABLE ingest_batches ADD COLUMN events_pruned_at timestamptz;
CREATE INDEX ingest_batches_written ON ingest_batches (written_at) WHERE written_at IS NOT NULL;
