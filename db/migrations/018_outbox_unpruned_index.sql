-- The outbox's retention drops the events of written batches older than OUTBOX_RETENTION_DAYS, in
-- chunks (activities/key-ledger.ts, PRUNE_EVENTS). Each chunk looked for batches still holding
-- events among all written ones; the records kept after pruning (until the backdating window has
-- passed, about 29 days of batches) all match the index on written_at but hold no events, so every
-- chunk walked past them, and Postgres chose to read the whole table instead: with 2 million pruned
-- records, 90-150 ms per chunk of 500, against 0.2 ms through this index (docs/benchmarks.md). The
-- index holds only the batches whose events are still there: a week's worth, not a month's.
-- Built in the migration's transaction, it holds writes to ingest_batches (ingest's inserts wait)
-- while it reads the table once (113 ms for 2 million records, measured on this machine).
CREATE INDEX ingest_batches_unpruned ON ingest_batches (written_at)
  WHERE written_at IS NOT NULL AND (events IS NOT NULL OR events_gzip IS NOT NULL);
