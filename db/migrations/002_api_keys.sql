-- Producer API keys: only a hash of the secret is stored; a key is revoked, never deleted.
CREATE TABLE api_keys (
  id          text PRIMARY KEY,                  -- the public part of the key, e.g. key_3f9a0c1d2b4e
  name        text NOT NULL,
  secret_hash bytea NOT NULL,                    -- SHA-256 of the 32-byte random secret
  scopes      text[] NOT NULL CHECK (cardinality(scopes) > 0),
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
