import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import { requireBearerToken, registerTokenRoute, TokenStore } from './auth.js';
import { ZuoraCode, ZuoraError, reasonsFromSchema, zuoraFailure, type SchemaIssue } from './errors.js';
import { FaultSwitches, checkFaultSettings, injectFailures, injectLatency, type FaultSettings } from './faults.js';
import { IdempotencyGuard } from './idempotency.js';
import { UsageImporter } from './importer.js';
import { RequestRateLimiter, checkRateLimitOptions, enforceRateLimit, type RateLimitOptions } from './rate-limit.js';
import { accountRoutes } from './routes/accounts.js';
import { paymentMethodRoutes } from './routes/payment-methods.js';
import { billRunRoutes, invoiceRoutes } from './routes/invoices.js';
import { faultRoutes } from './routes/faults.js';
import { objectUsageRoutes } from './routes/object-usage.js';
import { operatorRoutes } from './routes/operator.js';
import { USAGE_FILE_MAX_BYTES, usageRoutes } from './routes/usage.js';
import type { SandboxServices } from './services.js';
import { SandboxState } from './state.js';

export interface ZuoraSandboxOptions {
  /** The one OAuth client the sandbox tenant knows. */
  clientId: string;
  clientSecret: string;
  /** Where the tenant is kept across restarts; without it the sandbox forgets everything on exit. */
  dataFile?: string;
  /** Lifetime of a bearer token; Zuora's is about an hour. */
  tokenTtlSeconds?: number;
  /** Time between the steps of a usage import (Pending → Processing → Completed/Failed). */
  importStepMs?: number;
  /**
   * The tenant's request quotas. Defaults to Zuora's own (50,000 API and 2,000 authentication
   * requests a minute), generous enough that only a test that sets its own will meet a 429.
   */
  rateLimit?: RateLimitOptions;
  /** Faults on from the start; tests usually switch them at runtime through `/sandbox/faults`. */
  faults?: FaultSettings;
  /** Fastify's logger option: `false` for tests, pino options for a running sandbox. */
  logger?: boolean | object;
}

export const DEFAULT_TOKEN_TTL_SECONDS = 3599;
export const DEFAULT_IMPORT_STEP_MS = 50;

/** Zuora's error category for an HTTP status that Fastify itself produced. */
function codeForStatus(status: number): ZuoraCode {
  if (status === 404) return ZuoraCode.notFound;
  if (status === 413 || status === 429) return ZuoraCode.requestExceededLimit;
  if (status >= 500) return ZuoraCode.internalError;
  return ZuoraCode.malformedRequest;
}

/**
 * A local stand-in for the parts of Zuora's REST API Tally uses: OAuth tokens, accounts, usage
 * file imports, single usage records, with Zuora's paths, field names, statuses, error shapes and
 * Idempotency-Key behaviour. `/sandbox/*` adds what tests need to look inside.
 */
export async function buildZuoraSandbox(opts: ZuoraSandboxOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: opts.logger ?? false, genReqId: () => randomUUID() });
  const state = SandboxState.open(opts.dataFile);
  const tokens = new TokenStore(opts.tokenTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS);
  const faults = new FaultSwitches(tokens, checkFaultSettings(opts.faults ?? {}));
  const services: SandboxServices = {
    state,
    tokens,
    importer: new UsageImporter(state, opts.importStepMs ?? DEFAULT_IMPORT_STEP_MS, app.log, () => faults.importsHeld()),
    idempotency: new IdempotencyGuard(state),
    faults,
    rateLimiter: new RequestRateLimiter(checkRateLimitOptions(opts.rateLimit)),
  };

  // TypeBox's own checker: no silent coercion ("15" is not a bill cycle day) and exact field paths.
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  await app.register(multipart, { limits: { fileSize: USAGE_FILE_MAX_BYTES, files: 1, fields: 10 } });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('Zuora-Request-Id', request.id);
    const trackId = request.headers['zuora-track-id'];
    if (typeof trackId === 'string') reply.header('Zuora-Track-Id', trackId);
  });

  // Faults and rate limits act before authentication, as Zuora's gateway does: latency first (a
  // refused request is slow too), then the quota (every request counts), then injected failures.
  app.addHook('onRequest', injectLatency(faults));
  app.addHook('onRequest', enforceRateLimit(services.rateLimiter));
  app.addHook('onRequest', injectFailures(faults));

  app.setErrorHandler((thrown: unknown, request, reply) => {
    if (thrown instanceof ZuoraError) return reply.code(thrown.httpStatus).send(thrown.body());
    const error = thrown as FastifyError;
    if (error.validation) {
      return reply.code(400).send(zuoraFailure(...reasonsFromSchema(error.validation as unknown as SchemaIssue[])));
    }
    const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) request.log.error({ err: error }, 'Zuora sandbox request failed');
    return reply.code(status).send(zuoraFailure({ code: codeForStatus(status), message: error.message }));
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(zuoraFailure({ code: ZuoraCode.notFound, message: `No such resource: ${request.method} ${request.url}` })),
  );

  registerTokenRoute(app, { clientId: opts.clientId, clientSecret: opts.clientSecret }, services.tokens);
  await app.register(
    async (v1) => {
      v1.addHook('onRequest', requireBearerToken(services.tokens));
      await v1.register(accountRoutes, services);
      await v1.register(paymentMethodRoutes, services);
      await v1.register(invoiceRoutes, services);
      await v1.register(usageRoutes, services);
      await v1.register(objectUsageRoutes, services);
    },
    { prefix: '/v1' },
  );
  await app.register(operatorRoutes, { ...services, prefix: '/sandbox' });
  await app.register(faultRoutes, { ...services, prefix: '/sandbox' });
  await app.register(billRunRoutes, { ...services, prefix: '/sandbox' });

  app.addHook('onReady', async () => services.importer.resumeUnfinished());
  app.addHook('onClose', async () => services.importer.stop());
  return app;
}
