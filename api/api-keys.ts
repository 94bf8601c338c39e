import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type pg from 'pg';

export const API_KEY_SCOPES = ['ingest'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

/** `tally_<id>_<secret>`: the id finds the row, the secret (32 random bytes) proves possession. */
const KEY_FORMAT = /^tally_(key_[0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export type KeyCheck =
  | { ok: true; id: string; name: string; scopes: string[] }
  | { ok: false; status: 401 | 403; code: string; message: string };

interface CachedKey { secretHash: Buffer; name: string; scopes: string[]; revoked: boolean; fetchedAt: number }

/**
 * Issues, revokes and checks producer API keys. Checks are cached for a few seconds so ingest
 * does not read Postgres on every request; a revocation takes effect within that time.
 */
export class ApiKeys {
  private readonly cache = new Map<string, CachedKey>();

  constructor(private readonly db: pg.Pool, private readonly cacheMs = 5_000) {}

  async issue(name: string, scopes: readonly ApiKeyScope[]): Promise<{ id: string; key: string }> {
    const id = `key_${randomBytes(6).toString('hex')}`;
    const secret = randomBytes(32).toString('base64url');
    await this.db.query('INSERT INTO api_keys (id, name, secret_hash, scopes) VALUES ($1, $2, $3, $4)', [id, name, hash(secret), scopes]);
    return { id, key: `tally_${id}_${secret}` };
  }

  async revoke(id: string): Promise<boolean> {
    const res = await this.db.query('UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1', [id]);
    this.cache.delete(id);
    return (res.rowCount ?? 0) > 0;
  }

  async list(): Promise<{ id: string; name: string; scopes: string[]; createdAt: string; revokedAt: string | null }[]> {
    const { rows } = await this.db.query<{ id: string; name: string; scopes: string[]; created_at: Date; revoked_at: Date | null }>(
      'SELECT id, name, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at',
    );
    return rows.map((r) => ({ id: r.id, name: r.name, scopes: r.scopes, createdAt: r.created_at.toISOString(), revokedAt: r.revoked_at?.toISOString() ?? null }));
  }

  async check(authorization: string | undefined, scope: ApiKeyScope): Promise<KeyCheck> {
    if (!authorization) return denied(401, 'API_KEY_MISSING', 'send your API key as "Authorization: Bearer tally_key_…"');
    const match = KEY_FORMAT.exec(authorization.replace(/^Bearer\s+/i, ''));
    if (!match) return denied(401, 'API_KEY_MALFORMED', 'the Authorization header does not hold a Tally API key ("Bearer tally_key_…")');
    const [, id, secret] = match as unknown as [string, string, string];
    const key = await this.lookup(id);
    if (!key || !timingSafeEqual(key.secretHash, hash(secret))) return denied(401, 'API_KEY_UNKNOWN', `API key ${id} is not valid`);
    if (key.revoked) return denied(401, 'API_KEY_REVOKED', `API key ${id} has been revoked`);
    if (!key.scopes.includes(scope)) return denied(403, 'API_KEY_SCOPE', `API key ${id} may not ${scope}; its scopes: ${key.scopes.join(', ')}`);
    return { ok: true, id, name: key.name, scopes: key.scopes };
  }

  private async lookup(id: string): Promise<CachedKey | undefined> {
    const cached = this.cache.get(id);
    if (cached && Date.now() - cached.fetchedAt < this.cacheMs) return cached;
    const { rows } = await this.db.query<{ name: string; secret_hash: Buffer; scopes: string[]; revoked_at: Date | null }>(
      'SELECT name, secret_hash, scopes, revoked_at FROM api_keys WHERE id = $1', [id],
    );
    const row = rows[0];
    if (!row) return undefined;
    const key = { secretHash: row.secret_hash, name: row.name, scopes: row.scopes, revoked: row.revoked_at !== null, fetchedAt: Date.now() };
    this.cache.set(id, key);
    return key;
  }
}

function hash(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

function denied(status: 401 | 403, code: string, message: string): KeyCheck {
  return { ok: false, status, code, message };
}
