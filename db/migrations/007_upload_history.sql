-- Every quantity ever sent to Zuora for a UniqueKey, in order: the first upload, then each
-- correction after late usage changed a day that was already uploaded. upload_ledger keeps the
-- latest state per key; this keeps the story.
CREATE TABLE upload_history (
  id           bigserial PRIMARY KEY,
  unique_key   text NOT NULL REFERENCES upload_ledger (unique_key),
  kind         text NOT NULL CHECK (kind IN ('initial', 'correction', 'resend')),
  quantity     numeric(38, 0) NOT NULL,
  previous_quantity numeric(38, 0),
  import_id    text NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX upload_history_by_key ON upload_history (unique_key, id);

-- Each usage import Tally made, with Zuora's verdict.
CREATE TABLE upload_ledger_imports (
  import_id      text PRIMARY KEY,
  billing_day    date NOT NULL,
  records        integer NOT NULL,
  status         text NOT NULL DEFAULT 'submitted' CHECK (status IN ('submitted', 'completed', 'failed')),
  status_message text,
  submitted_at   timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);
INSERT INTO upload_ledger_imports (import_id, billing_day, records, status)
  SELECT import_id, min(billing_day), count(*), min(status) FROM upload_ledger GROUP BY import_id;
INSERT INTO upload_history (unique_key, kind, quantity, import_id, recorded_at)
  SELECT unique_key, 'initial', quantity, import_id, submitted_at FROM upload_ledger;
