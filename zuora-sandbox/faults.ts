import { setTimeout as sleep } from 'node:timers/promises';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TokenStore } from './auth.js';
import { ZuoraCode, zuoraFailure } from './errors.js';
import { setRateLimitHeaders, tooManyRequests } from './rate-limit.js';

/**
 * Faults a test (or an operator) turns on: the ways the real Zuora misbehaves that Tally must
 * survive. `latencyMs`, `failNext`, `errorRate` and `rateLimitStorm` act on `/v1` requests only,
 * and only on those under `paths` when it is given.
 */
export const FaultSettings = Type.Object(
  {
    /** Added to every `/v1` request before it is served. */
    latencyMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
    /** The next n `/v1` requests fail with `errorStatus`: the deterministic form of `errorRate`. */
    failNext: Type.Optional(Type.Integer({ minimum: 0 })),
    /** Fraction (0..1) of `/v1` requests answered with `errorStatus`, chosen at random. */
    errorRate: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    /** 500 (Zuora's internal error) unless set to 503 (Zuora unavailable, e.g. maintenance). */
    errorStatus: Type.Optional(Type.Union([Type.Literal(500), Type.Literal(503)])),
    /** The next `requests` `/v1` requests get 429 with this `Retry-After`, whatever the real quota says. */
    rateLimitStorm: Type.Optional(
      Type.Object(
        { requests: Type.Integer({ minimum: 0 }), retryAfterSeconds: Type.Integer({ minimum: 1, maximum: 86_400 }) },
        { additionalProperties: false },
      ),
    ),
    /** Usage imports reach Processing and stay there until this is turned off. */
    hangImports: Type.Optional(Type.Boolean()),
    /** Every token issued so far answers 401 "expired" while this is on; tokens issued later work. */
    expireTokens: Type.Optional(Type.Boolean()),
    /** Path prefixes (e.g. `/v1/usage`) the request faults are limited to; all of `/v1` when absent. */
    paths: Type.Optional(Type.Array(Type.String({ pattern: '^/v1(/|$)' }))),
  },
  { additionalProperties: false },
);
export type FaultSettings = Static<typeof FaultSettings>;

/** A build-time check of `faults`, in the same terms the operator endpoint uses. */
export function checkFaultSettings(settings: unknown): FaultSettings {
  if (Value.Check(FaultSettings, settings)) return settings;
  const issues = [...Value.Errors(FaultSettings, settings)].map((issue) => `${issue.path || '/'} ${issue.message}`);
  throw Object.assign(new Error(`Invalid Zuora sandbox faults: ${issues.join('; ')}`), { code: 'ZUORA_SANDBOX_FAULTS' });
}

/** What an injected fault does to one `/v1` request, when it does anything. */
export type InjectedFailure = { status: 429; retryAfterSeconds: number } | { status: 500 | 503 };

/** Only the faults that are on: zeros, `false` and empty lists are dropped so `GET` shows what acts. */
function liveFaults(settings: FaultSettings): FaultSettings {
  const live: FaultSettings = {};
  if (settings.latencyMs) live.latencyMs = settings.latencyMs;
  if (settings.failNext) live.failNext = settings.failNext;
  if (settings.errorRate) live.errorRate = settings.errorRate;
  if (settings.errorStatus) live.errorStatus = settings.errorStatus;
  if (settings.rateLimitStorm?.requests) live.rateLimitStorm = { ...settings.rateLimitStorm };
  if (settings.hangImports) live.hangImports = true;
  if (settings.expireTokens) live.expireTokens = true;
  if (settings.paths?.length) live.paths = [...settings.paths];
  return live;
}

function pathOf(url: string): string {
  return url.split('?', 1)[0] ?? '';
}

/** The sandbox's fault switches; one set per app, changed at runtime through `/sandbox/faults`. */
export class FaultSwitches {
  private current: FaultSettings = {};

  constructor(
    private readonly tokens: TokenStore,
    initial: FaultSettings = {},
    private readonly random: () => number = Math.random,
  ) {
    this.replace(initial);
  }

  show(): FaultSettings {
    return structuredClone(this.current);
  }

  /** `PUT`: these faults and no others. */
  replace(settings: FaultSettings): FaultSettings {
    return this.apply(settings, settings);
  }

  /** `POST`: these faults on top of the current ones. */
  merge(settings: FaultSettings): FaultSettings {
    return this.apply({ ...this.current, ...settings }, settings);
  }

  /** `DELETE`: a well-behaved Zuora again. */
  clear(): FaultSettings {
    return this.apply({}, {});
  }

  importsHeld(): boolean {
    return this.current.hangImports === true;
  }

  /** The latency to add to this request (0 for none). */
  latencyFor(url: string): number {
    return this.applies(url) ? (this.current.latencyMs ?? 0) : 0;
  }

  /** The failure this request gets, if any; the storm and `failNext` are used up one request at a time. */
  failureFor(url: string): InjectedFailure | undefined {
    if (!this.applies(url)) return undefined;
    const storm = this.current.rateLimitStorm;
    if (storm) {
      this.current.rateLimitStorm = { ...storm, requests: storm.requests - 1 };
      this.current = liveFaults(this.current);
      return { status: 429, retryAfterSeconds: storm.retryAfterSeconds };
    }
    const status = this.current.errorStatus ?? 500;
    if (this.current.failNext) {
      this.current.failNext -= 1;
      this.current = liveFaults(this.current);
      return { status };
    }
    if (this.current.errorRate && this.random() < this.current.errorRate) return { status };
    return undefined;
  }

  private apply(next: FaultSettings, changed: FaultSettings): FaultSettings {
    // Turning expireTokens on (again) expires every token issued until this moment.
    if (changed.expireTokens) this.tokens.expireAllIssued();
    else if (!next.expireTokens) this.tokens.restoreIssued();
    this.current = liveFaults(next);
    return this.show();
  }

  private applies(url: string): boolean {
    const path = pathOf(url);
    if (path !== '/v1' && !path.startsWith('/v1/')) return false;
    const prefixes = this.current.paths;
    if (!prefixes) return true;
    return prefixes.some((prefix) => path === prefix || path.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`));
  }
}

/** `onRequest` hook, first of all: the latency fault, so even a refused request is slow. */
export function injectLatency(faults: FaultSwitches) {
  return async (request: FastifyRequest): Promise<void> => {
    const latencyMs = faults.latencyFor(request.url);
    if (latencyMs > 0) await sleep(latencyMs);
  };
}

/**
 * `onRequest` hook, after the rate limiter and before authentication: a 429 storm or a 5xx, in
 * Zuora's shapes. It runs before the handler, so a failed request changes nothing, as a gateway
 * refusal does not.
 */
export function injectFailures(faults: FaultSwitches) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const failure = faults.failureFor(request.url);
    if (!failure) return undefined;
    if (failure.status === 429) {
      // The storm stands for a spent quota, so the headers say so too.
      const { retryAfterSeconds } = failure;
      setRateLimitHeaders(reply, { limit: Number(reply.getHeader('RateLimit-Limit') ?? 0), remaining: 0, resetSeconds: retryAfterSeconds });
      return tooManyRequests(reply, retryAfterSeconds, `Too many requests: the tenant's request limit is exceeded; retry after ${retryAfterSeconds} seconds`);
    }
    const message =
      failure.status === 503
        ? 'Zuora is temporarily unavailable; retry later (injected by the sandbox)'
        : 'An internal error occurred; retry later (injected by the sandbox)';
    return reply.code(failure.status).send(zuoraFailure({ code: ZuoraCode.internalError, message }));
  };
}
