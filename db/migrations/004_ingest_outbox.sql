-- The outbox is drained by a long-running Temporal workflow instead of one workflow per request:
-- the drainer finds waiting batches through this index, and records which workflow wrote each.
ALTER TABLE ingest_batches ADD COLUMN written_by text;
CREATE INDEX ingest_batches_waiting ON ingest_batches (received_at) WHERE written_at IS NULL;
