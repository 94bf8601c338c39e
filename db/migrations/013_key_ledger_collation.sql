-- The key ledger compares keys byte for byte: an idempotency key is an opaque string, so the
-- locale's collation buys nothing, and every insert into and lookup in the unique index pays for
-- it (docs/benchmarks.md). Keys are still unique exactly as before: "C" only changes the order.
ALTER TABLE event_keys ALTER COLUMN event_key TYPE text COLLATE "C";
