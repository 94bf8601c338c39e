-- Trials: each organisation's billing status, its trial end, its payment methods, and every
-- notification the trial workflow sent (one row per idempotency key, written before sending).

ALTER TABLE organisations
  ADD COLUMN status text NOT NULL DEFAULT 'trial'
    CHECK (status IN ('trial', 'paid', 'trial_expired', 'cancelled')),
  ADD COLUMN trial_started_at timestamptz,
  ADD COLUMN trial_ends_at timestamptz,
  ADD COLUMN status_changed_at timestamptz;
-- The sweep looks for organisations that should have a running trial workflow.
CREATE INDEX organisations_in_trial ON organisations (id) WHERE status IN ('trial', 'trial_expired');

-- Payment methods as Tally records them (the Zuora sandbox has no payment-method route yet).
CREATE TABLE payment_methods (
  id          text PRIMARY KEY,                 -- the caller's id (e.g. the payment provider's), or one made from the request
  org_id      text NOT NULL REFERENCES organisations (id),
  type        text NOT NULL,                    -- CreditCard, ACH, PayPal, ...
  last4       text,
  expiry      text,                             -- MM/YYYY
  added_by    text NOT NULL,                    -- who converted the trial: an operator, the billing API
  added_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_methods_by_org ON payment_methods (org_id);

-- One row per notification: (org, kind, trial end) is the idempotency key, so a retried
-- activity or a restarted worker never sends the same notice twice. Each channel is marked
-- once it has gone out.
CREATE TABLE trial_notifications (
  idempotency_key text PRIMARY KEY,
  org_id          text NOT NULL REFERENCES organisations (id),
  kind            text NOT NULL,               -- reminder-7d, expired, enforced, lifted, ...
  trial_ends_at   timestamptz NOT NULL,
  payload         jsonb NOT NULL,
  email_status    text NOT NULL CHECK (email_status IN ('pending', 'sent', 'none')),
  webhook_status  text NOT NULL CHECK (webhook_status IN ('pending', 'sent', 'none')),
  webhook_attempts integer NOT NULL DEFAULT 0,
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  sent_at         timestamptz
);
CREATE INDEX trial_notifications_by_org ON trial_notifications (org_id, created_at);

-- Email as sent: with no SMTP server configured this table is the mailbox (tests and the admin
-- UI read it); with one, it is the record of what went out.
CREATE TABLE notification_outbox (
  id              bigserial PRIMARY KEY,
  idempotency_key text NOT NULL UNIQUE,
  org_id          text NOT NULL,
  to_address      text,
  subject         text NOT NULL,
  body            text NOT NULL,
  transport       text NOT NULL CHECK (transport IN ('outbox', 'smtp')),
  created_at      timestamptz NOT NULL DEFAULT now()
);
