import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ZuoraCode, zuoraFailure } from './errors.js';

/** Zuora's token answer (`POST /oauth/token`). */
export interface OAuthToken {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
  scope: string;
  jti: string;
}

export interface ClientCredentials {
  clientId: string;
  clientSecret: string;
}

/**
 * Bearer tokens the sandbox has issued. They live in memory only: after a restart clients get a
 * 401 and must fetch a new token, as they must when a real Zuora token expires.
 */
export class TokenStore {
  /** Each token's expiry and its place in the order of issue. */
  private readonly issued = new Map<string, { expiresAt: number; serial: number }>();
  private lastSerial = 0;
  /** The expireTokens fault: tokens up to this serial count as expired. */
  private expiredThroughSerial = 0;
  private readonly scope = `user.${randomBytes(16).toString('hex')} entity.${randomUUID()} service.usage.read service.usage.write tenant.sandbox`;

  constructor(private readonly ttlSeconds: number) {}

  issue(now = Date.now()): OAuthToken {
    this.forgetExpired(now);
    const accessToken = randomBytes(16).toString('hex');
    this.issued.set(accessToken, { expiresAt: now + this.ttlSeconds * 1000, serial: ++this.lastSerial });
    return {
      access_token: accessToken,
      token_type: 'bearer',
      expires_in: this.ttlSeconds,
      scope: this.scope,
      jti: randomBytes(16).toString('hex'),
    };
  }

  check(token: string, now = Date.now()): 'valid' | 'expired' | 'unknown' {
    const entry = this.issued.get(token);
    if (entry === undefined) return 'unknown';
    if (entry.serial <= this.expiredThroughSerial) return 'expired';
    return now < entry.expiresAt ? 'valid' : 'expired';
  }

  /** A fault: every token issued so far is treated as expired, as if its hour had run out; later ones work. */
  expireAllIssued(): void {
    this.expiredThroughSerial = this.lastSerial;
  }

  /** Ends that fault: the tokens it expired live out their own lifetime again. */
  restoreIssued(): void {
    this.expiredThroughSerial = 0;
  }

  private forgetExpired(now: number): void {
    for (const [token, { expiresAt }] of this.issued) if (expiresAt <= now) this.issued.delete(token);
  }
}

function authenticationError(reply: FastifyReply, detail: string): FastifyReply {
  // Zuora's 401 carries `message: "Authentication error"`; the v1 failure shape rides along so
  // clients that only understand `reasons` still see the code.
  return reply
    .code(401)
    .header('WWW-Authenticate', 'Bearer realm=Zuora API')
    .send({ message: 'Authentication error', ...zuoraFailure({ code: ZuoraCode.authenticationFailed, message: `Authentication error: ${detail}` }) });
}

/** `onRequest` hook for every `/v1` route: a live bearer token from `POST /oauth/token`. */
export function requireBearerToken(tokens: TokenStore) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    if (!match?.[1]) {
      await authenticationError(reply, 'the Authorization header must carry a bearer token from POST /oauth/token');
      return;
    }
    const status = tokens.check(match[1]);
    if (status === 'expired') await authenticationError(reply, 'the bearer token has expired; request a new one');
    else if (status === 'unknown') await authenticationError(reply, 'the bearer token is not valid');
  };
}

function formField(body: unknown, name: string): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const value = (body as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}

/** `POST /oauth/token`: client credentials in a form body, as Zuora takes them. */
export function registerTokenRoute(app: FastifyInstance, credentials: ClientCredentials, tokens: TokenStore): void {
  app.post('/oauth/token', async (request, reply) => {
    const grantType = formField(request.body, 'grant_type');
    if (grantType !== 'client_credentials') {
      return reply.code(400).send(
        zuoraFailure({ code: ZuoraCode.invalidValue, message: `'grant_type' must be client_credentials, not ${JSON.stringify(grantType ?? null)}` }),
      );
    }
    const clientId = formField(request.body, 'client_id');
    const clientSecret = formField(request.body, 'client_secret');
    if (clientId !== credentials.clientId || clientSecret !== credentials.clientSecret) {
      return reply.code(401).send(
        zuoraFailure({ code: ZuoraCode.authenticationFailed, message: 'Authentication error: invalid client_id or client_secret' }),
      );
    }
    return tokens.issue();
  });
}
