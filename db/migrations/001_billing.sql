-- The billing DB: organisations, the ingest key ledger and outbox, daily usage, the upload ledger.

CREATE TABLE organisations (
  id                   text PRIMARY KEY,                -- the organisation's external id
  name                 text NOT NULL,
  internal_instance_id text NOT NULL UNIQUE,            -- what producers report usage against
  zuora_account_id     text,
  zuora_account_number text,
  created_at           timestamptz NOT NULL DEFAULT now()
);

-- Every accepted event key with a hash of its payload: a retry is a duplicate, a changed payload a conflict.
CREATE TABLE event_keys (
  event_key    text PRIMARY KEY,
  payload_hash bytea NOT NULL,
  batch_id     uuid NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now()
);

-- Accepted events, stored in the same transaction that claims their keys; ingest-<batch_id> writes them to BigQuery.
CREATE TABLE ingest_batches (
  batch_id    uuid PRIMARY KEY,
  events      jsonb NOT NULL,
  event_count integer NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  written_at  timestamptz
);

-- One line per customer, day and amount type, recomputed from BigQuery by aggregate-<day>.
CREATE TABLE usage_daily (
  internal_instance_id text NOT NULL,
  billing_day          date NOT NULL,
  amount_type          text NOT NULL,
  total                numeric(38, 0) NOT NULL CHECK (total >= 0),
  event_count          bigint NOT NULL,
  key_checksum         text NOT NULL,        -- BIT_XOR of FARM_FINGERPRINT(insert id) over the day's rows
  computed_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (internal_instance_id, billing_day, amount_type)
);
CREATE INDEX usage_daily_by_day ON usage_daily (billing_day);

-- Every usage record sent to Zuora, under the deterministic UniqueKey Zuora dedupes on.
CREATE TABLE upload_ledger (
  unique_key           text PRIMARY KEY,
  org_id               text NOT NULL REFERENCES organisations (id),
  zuora_account_number text NOT NULL,
  billing_day          date NOT NULL,
  amount_type          text NOT NULL,
  unit_of_measure      text NOT NULL,
  quantity             numeric(38, 0) NOT NULL,
  import_id            text NOT NULL,
  status               text NOT NULL CHECK (status IN ('submitted', 'completed', 'failed')),
  status_message       text,
  submitted_at         timestamptz NOT NULL DEFAULT now(),
  completed_at         timestamptz
);
CREATE INDEX upload_ledger_by_day ON upload_ledger (billing_day);
CREATE INDEX upload_ledger_by_import ON upload_ledger (import_id);
