-- Aggregation that scales and says what changed: dirty days, live counters, restatements,
-- usage thresholds (docs/aggregation.md).

-- Which (customer, day) pairs received events since their last aggregation. The drainer marks
-- them in the transaction that records the batch as written; an aggregation clears only the
-- marks it saw (by generation), so an event arriving while it runs leaves the pair dirty.
CREATE SEQUENCE dirty_day_generation;
CREATE TABLE dirty_days (
  billing_day          date NOT NULL,
  internal_instance_id text NOT NULL,
  generation           bigint NOT NULL DEFAULT nextval('dirty_day_generation'),
  first_marked_at      timestamptz NOT NULL DEFAULT now(),
  late                 boolean NOT NULL DEFAULT false,  -- an event arrived after the day closed
  PRIMARY KEY (billing_day, internal_instance_id)
);

-- A day is open until DAY_CLOSE_DELAY_HOURS after its UTC midnight; the first aggregation after
-- that settles and closes it. A change to a closed day is a restatement; only closed days upload.
CREATE TABLE closed_days (
  billing_day  date PRIMARY KEY,
  closed_at    timestamptz NOT NULL DEFAULT now(),
  workflow_id  text
);

-- Today's (and every day's) usage as ingest wrote it, seconds old: fed by the drainer in the
-- transaction that marks its batches written, so each accepted event counts exactly once.
CREATE TABLE usage_live (
  internal_instance_id text NOT NULL,
  billing_day          date NOT NULL,
  amount_type          text NOT NULL,
  total                numeric(38, 0) NOT NULL,
  event_count          bigint NOT NULL,
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (internal_instance_id, billing_day, amount_type)
);

-- Every change to a line of a closed day, with its reason: late usage, a backfill, removed raw rows.
CREATE TABLE usage_restatements (
  id                   bigserial PRIMARY KEY,
  internal_instance_id text NOT NULL,
  billing_day          date NOT NULL,
  amount_type          text NOT NULL,
  previous_total       numeric(38, 0),            -- null: the line did not exist
  new_total            numeric(38, 0) NOT NULL,
  previous_event_count bigint,
  new_event_count      bigint NOT NULL,
  reason               text NOT NULL CHECK (reason IN ('late-usage', 'backfill', 'recompute')),
  uploaded_before      boolean NOT NULL,          -- Zuora already held the day: the upload sends a correction
  workflow_id          text,
  restated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_restatements_by_day ON usage_restatements (billing_day);
CREATE INDEX usage_restatements_by_instance ON usage_restatements (internal_instance_id, billing_day);

-- Thresholds an organisation sets per amount type and billing period (calendar month, UTC).
CREATE TABLE usage_thresholds (
  id           text PRIMARY KEY,
  org_id       text NOT NULL REFERENCES organisations (id),
  amount_type  text NOT NULL,
  quantity     numeric(38, 0) NOT NULL CHECK (quantity > 0),
  webhook_url  text NOT NULL,
  secret       text NOT NULL,                    -- HMAC-SHA256 key for the webhook signature
  created_at   timestamptz NOT NULL DEFAULT now(),
  deleted_at   timestamptz
);
CREATE INDEX usage_thresholds_by_org ON usage_thresholds (org_id) WHERE deleted_at IS NULL;

-- One row per threshold and period crossed: the unique key is what makes the webhook go once.
CREATE TABLE usage_threshold_crossings (
  threshold_id text NOT NULL REFERENCES usage_thresholds (id),
  period_start date NOT NULL,
  period_total numeric(38, 0) NOT NULL,
  crossed_at   timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  attempts     integer NOT NULL DEFAULT 0,
  last_error   text,
  PRIMARY KEY (threshold_id, period_start)
);
