-- What a reconciliation of a day found: one row per (account, unit) line that differs between
-- Postgres's usage, the upload ledger and what Zuora holds.
CREATE TABLE reconciliation_runs (
  id           bigserial PRIMARY KEY,
  billing_day  date NOT NULL,
  lines        integer NOT NULL,
  differences  integer NOT NULL,
  finished_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconciliation_runs_by_day ON reconciliation_runs (billing_day, id);

CREATE TABLE reconciliation_differences (
  run_id               bigint NOT NULL REFERENCES reconciliation_runs (id) ON DELETE CASCADE,
  unique_key           text NOT NULL,
  org_id               text,
  zuora_account_number text,
  amount_type          text,
  kind                 text NOT NULL CHECK (kind IN ('not_uploaded', 'ledger_behind', 'missing_in_zuora', 'quantity_differs', 'unknown_in_zuora')),
  usage_quantity       numeric(38, 0),
  ledger_quantity      numeric(38, 0),
  zuora_quantity       numeric,
  PRIMARY KEY (run_id, unique_key)
);
