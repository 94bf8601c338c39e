import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type pg from 'pg';

/** `tally_org_<12 hex>_<secret>`: the id finds the row, the secret (32 random bytes) proves possession. */
const TOKEN_FORMAT = /^tally_(org_[0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

/** Writing last_used_at on every request would turn each read into a write; once a minute is enough to see a token in use. */
const LAST_USED_EVERY_MS = 60_000;

export type OrgTokenCheck =
  | { ok: true; tokenId: string; orgId: string }
  | { ok: false; code: 'ORG_TOKEN_MISSING' | 'ORG_TOKEN_MALFORMED' | 'ORG_TOKEN_UNKNOWN' | 'ORG_TOKEN_REVOKED'; message: string };

export interface OrgTokenInfo {
  id: string;
  orgId: string;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

interface CachedToken { orgId: string; secretHash: Buffer; revoked: boolean; fetchedAt: number; lastUsedWrittenAt: number }

interface TokenRow { id: string; org_id: string; name: string; created_at: Date; last_used_at: Date | null; revoked_at: Date | null }

/**
 * Issues, lists, revokes and checks the tokens customers use on /v1/organisations/:orgId/*.
 * Checks are cached for a few seconds so a dashboard's burst of calls reads Postgres once; a
 * revocation takes effect at once in this process and within that time in the others.
 */
export class OrgTokens {
  private readonly cache = new Map<string, CachedToken>();

  constructor(private readonly db: pg.Pool, private readonly cacheMs = 5_000) {}

  /** The secret is in this answer only. Throws OrganisationNotFound for an unknown organisation. */
  async issue(orgId: string, name: string): Promise<OrgTokenInfo & { token: string }> {
    const issued = await this.insert(orgId, name, 'admin');
    if (!issued) throw new OrganisationNotFound(orgId);
    return issued;
  }

  /**
   * Signup's token: the organisation's first, issued only while it has none (a unique index makes
   * two racing signups get one between them). Undefined when it already has one.
   */
  async issueFirst(orgId: string, name: string): Promise<(OrgTokenInfo & { token: string }) | undefined> {
    return this.insert(orgId, name, 'signup');
  }

  private async insert(orgId: string, name: string, issuedBy: 'admin' | 'signup'): Promise<(OrgTokenInfo & { token: string }) | undefined> {
    const id = `org_${randomBytes(6).toString('hex')}`;
    const secret = randomBytes(32).toString('base64url');
    const { rows } = await this.db.query<TokenRow>(
      `INSERT INTO org_tokens (id, org_id, name, secret_hash, issued_by)
       SELECT $1, o.id, $3, $4, $5 FROM organisations o
       WHERE o.id = $2 AND ($5 = 'admin' OR NOT EXISTS (SELECT 1 FROM org_tokens t WHERE t.org_id = o.id))
       ON CONFLICT DO NOTHING
       RETURNING id, org_id, name, created_at, last_used_at, revoked_at`,
      [id, orgId, name, hash(secret), issuedBy],
    );
    return rows[0] && { ...info(rows[0]), token: `tally_${id}_${secret}` };
  }

  async list(orgId: string): Promise<OrgTokenInfo[]> {
    const { rows } = await this.db.query<TokenRow>(
      'SELECT id, org_id, name, created_at, last_used_at, revoked_at FROM org_tokens WHERE org_id = $1 ORDER BY created_at, id', [orgId],
    );
    return rows.map(info);
  }

  /** Revokes a token of that organisation (a token id of another one is "not found"); revoking twice keeps the first time. */
  async revoke(orgId: string, tokenId: string): Promise<OrgTokenInfo | undefined> {
    const { rows } = await this.db.query<TokenRow>(
      `UPDATE org_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND org_id = $2
       RETURNING id, org_id, name, created_at, last_used_at, revoked_at`,
      [tokenId, orgId],
    );
    this.cache.delete(tokenId);
    return rows[0] ? info(rows[0]) : undefined;
  }

  /** Which organisation the Authorization header's token belongs to, or why it is refused. */
  async check(authorization: string | undefined): Promise<OrgTokenCheck> {
    if (!authorization) return { ok: false, code: 'ORG_TOKEN_MISSING', message: 'send your organisation token as "Authorization: Bearer tally_org_…"' };
    const match = TOKEN_FORMAT.exec(authorization.replace(/^Bearer\s+/i, ''));
    if (!match) return { ok: false, code: 'ORG_TOKEN_MALFORMED', message: 'the Authorization header does not hold a Tally organisation token ("Bearer tally_org_…")' };
    const [, id, secret] = match as unknown as [string, string, string];
    const token = await this.lookup(id);
    if (!token || !timingSafeEqual(token.secretHash, hash(secret))) return { ok: false, code: 'ORG_TOKEN_UNKNOWN', message: `organisation token ${id} is not valid` };
    if (token.revoked) return { ok: false, code: 'ORG_TOKEN_REVOKED', message: `organisation token ${id} has been revoked` };
    if (Date.now() - token.lastUsedWrittenAt >= LAST_USED_EVERY_MS) {
      token.lastUsedWrittenAt = Date.now();
      await this.db.query('UPDATE org_tokens SET last_used_at = now() WHERE id = $1', [id]);
    }
    return { ok: true, tokenId: id, orgId: token.orgId };
  }

  private async lookup(id: string): Promise<CachedToken | undefined> {
    const cached = this.cache.get(id);
    if (cached && Date.now() - cached.fetchedAt < this.cacheMs) return cached;
    const { rows } = await this.db.query<{ org_id: string; secret_hash: Buffer; revoked_at: Date | null }>(
      'SELECT org_id, secret_hash, revoked_at FROM org_tokens WHERE id = $1', [id],
    );
    const row = rows[0];
    if (!row) return undefined;
    const token = { orgId: row.org_id, secretHash: row.secret_hash, revoked: row.revoked_at !== null, fetchedAt: Date.now(), lastUsedWrittenAt: cached?.lastUsedWrittenAt ?? 0 };
    this.cache.set(id, token);
    return token;
  }
}

export class OrganisationNotFound extends Error {
  readonly code = 'ORG_NOT_FOUND';
  readonly statusCode = 404;
  constructor(orgId: string) {
    super(`no organisation ${orgId}`);
    this.name = 'OrganisationNotFound';
  }
}

function info(r: TokenRow): OrgTokenInfo {
  return {
    id: r.id, orgId: r.org_id, name: r.name, createdAt: r.created_at.toISOString(),
    lastUsedAt: r.last_used_at?.toISOString() ?? null, revokedAt: r.revoked_at?.toISOString() ?? null,
  };
}

function hash(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}
