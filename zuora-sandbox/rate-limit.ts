import type { FastifyReply, FastifyRequest } from 'fastify';
import { ZuoraCode, zuoraFailure } from './errors.js';

/**
 * Zuora's request classes, each with its own quota per tenant: AUTH is `POST /oauth/token`, API
 * is every other REST call. (Zuora's third class, UI, has no counterpart here.)
 */
export type RequestClass = 'API' | 'AUTH';

export interface RateLimitOptions {
  /** API requests (every `/v1` request) the tenant may make per window; Zuora's default is 50,000 a minute. */
  requestsPerWindow: number;
  windowMs: number;
  /** Authentication requests (`POST /oauth/token`) per window; Zuora's default is 2,000 a minute. */
  authRequestsPerWindow?: number;
}

export const DEFAULT_RATE_LIMIT: Required<RateLimitOptions> = { requestsPerWindow: 50_000, windowMs: 60_000, authRequestsPerWindow: 2_000 };

/** What Zuora reports in `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`. */
export interface Quota {
  limit: number;
  remaining: number;
  /** Seconds until the window ends and the quota is whole again. */
  resetSeconds: number;
}

/** Zuora's defaults for what is not given; a coded error for a quota that is not a positive whole number. */
export function checkRateLimitOptions(opts: RateLimitOptions | undefined): Required<RateLimitOptions> {
  const full = { ...DEFAULT_RATE_LIMIT, ...opts };
  for (const [name, value] of Object.entries(full)) {
    if (!Number.isInteger(value) || value < 1) {
      throw Object.assign(new Error(`rateLimit.${name} must be a whole number of at least 1, not ${JSON.stringify(value)}`), {
        code: 'ZUORA_SANDBOX_RATE_LIMIT',
      });
    }
  }
  return full;
}

/**
 * A tenant's request quotas, counted in fixed windows aligned to the clock, as Zuora counts per
 * minute, hour and day. The sandbox has one tenant, so one counter per request class; Zuora's
 * separate hour and day quotas are left out: a test sets one window and its size.
 */
export class RequestRateLimiter {
  private readonly windows = new Map<RequestClass, { index: number; count: number }>();

  constructor(private readonly opts: Required<RateLimitOptions>) {}

  /** Counts one request; `allowed` is false once the class's quota for this window is used up. */
  take(requestClass: RequestClass, now = Date.now()): Quota & { allowed: boolean } {
    const index = Math.floor(now / this.opts.windowMs);
    const window = this.windows.get(requestClass);
    // Refused requests count too: Zuora's gateway counts what it receives, not what it serves.
    const count = window?.index === index ? window.count + 1 : 1;
    this.windows.set(requestClass, { index, count });
    const limit = this.limitOf(requestClass);
    return { allowed: count <= limit, limit, remaining: Math.max(0, limit - count), resetSeconds: this.resetSeconds(now) };
  }

  /** The quota as it stands, without counting a request (for `GET /sandbox/faults`). */
  peek(requestClass: RequestClass, now = Date.now()): Quota {
    const window = this.windows.get(requestClass);
    const count = window?.index === Math.floor(now / this.opts.windowMs) ? window.count : 0;
    const limit = this.limitOf(requestClass);
    return { limit, remaining: Math.max(0, limit - count), resetSeconds: this.resetSeconds(now) };
  }

  private limitOf(requestClass: RequestClass): number {
    return requestClass === 'AUTH' ? this.opts.authRequestsPerWindow : this.opts.requestsPerWindow;
  }

  private resetSeconds(now: number): number {
    const windowEnd = (Math.floor(now / this.opts.windowMs) + 1) * this.opts.windowMs;
    return Math.max(1, Math.ceil((windowEnd - now) / 1000));
  }
}

/**
 * Which quota a request counts against. `/oauth/token` is counted, in its own AUTH quota, as
 * Zuora documents for authentication requests; `/sandbox/*` is the sandbox's own and never
 * counted, since it does not exist on Zuora.
 */
export function requestClassOf(url: string): RequestClass | undefined {
  const path = url.split('?', 1)[0] ?? '';
  if (path === '/oauth/token') return 'AUTH';
  if (path === '/v1' || path.startsWith('/v1/')) return 'API';
  return undefined;
}

export function setRateLimitHeaders(reply: FastifyReply, quota: Quota): void {
  reply.header('RateLimit-Limit', String(quota.limit));
  reply.header('RateLimit-Remaining', String(quota.remaining));
  reply.header('RateLimit-Reset', String(quota.resetSeconds));
}

/**
 * Zuora's 429: `Retry-After` in seconds, and the v1 failure shape with the request-exceeded-limit
 * category; `message` at the top level too, as Zuora's gateway answers it.
 */
export function tooManyRequests(reply: FastifyReply, retryAfterSeconds: number, message: string): FastifyReply {
  return reply
    .code(429)
    .header('Retry-After', String(retryAfterSeconds))
    .send({ message, ...zuoraFailure({ code: ZuoraCode.requestExceededLimit, message }) });
}

/** `onRequest` hook: counts every Zuora request, reports the quota in headers and refuses once it is spent. */
export function enforceRateLimit(limiter: RequestRateLimiter) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const requestClass = requestClassOf(request.url);
    if (!requestClass) return undefined;
    const quota = limiter.take(requestClass);
    setRateLimitHeaders(reply, quota);
    if (quota.allowed) return undefined;
    const kind = requestClass === 'AUTH' ? 'authentication' : 'API';
    return tooManyRequests(
      reply,
      quota.resetSeconds,
      `You have exceeded the limit of ${quota.limit} ${kind} requests for this tenant in the current window; retry after ${quota.resetSeconds} seconds`,
    );
  };
}
