-- Organisation tokens for the customer-facing billing API: each one reads and acts on one
-- organisation only. Only a hash of the secret is stored; a token is revoked, never deleted,
-- so the admin list keeps who had access and when.
CREATE TABLE org_tokens (
  id           text PRIMARY KEY,                 -- the public part of the token, e.g. org_3f9a0c1d2b4e
  org_id       text NOT NULL REFERENCES organisations (id),
  name         text NOT NULL,                    -- what the customer or operator called it ("CI", "signup")
  secret_hash  bytea NOT NULL,                   -- SHA-256 of the 32-byte random secret
  issued_by    text NOT NULL DEFAULT 'admin' CHECK (issued_by IN ('admin', 'signup')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,                      -- written at most once a minute per token
  revoked_at   timestamptz
);
CREATE INDEX org_tokens_by_org ON org_tokens (org_id, created_at);
-- Self-service signup hands out an organisation's first token once, ever: a repeated signup of
-- the same instance (a retry, or someone else) cannot obtain a second one.
CREATE UNIQUE INDEX org_tokens_one_signup ON org_tokens (org_id) WHERE issued_by = 'signup';
