-- The outbox only stores and returns the events: `json` keeps the text as sent (a syntax check),
-- where `jsonb` would parse and rebuild every batch on the ingest path.
ALTER TABLE ingest_batches ALTER COLUMN events TYPE json USING events::json;
