import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../core/logger.js';
import type { ApiDeps } from './context.js';
import { adminAuthPlugin } from './plugins/admin-auth.js';
import { adminUiPlugin } from './plugins/admin-ui.js';
import { apiKeyAuthPlugin } from './plugins/api-key-auth.js';
import { gzipBodyPlugin } from './plugins/gzip-body.js';
import { jsonBodyPlugin } from './plugins/json-body.js';
import { metricsPlugin } from './plugins/metrics.js';
import { orgAuthPlugin, orgTokenSecurityScheme } from './plugins/org-auth.js';
import { backfillRoutes } from './routes/backfills.js';
import { batchRoutes } from './routes/batches.js';
import { adminRoutes } from './routes/admin.js';
import { trialRoutes } from './routes/trials.js';
import { apiKeyRoutes } from './routes/api-keys.js';
import { adminOrganisationRoutes } from './routes/admin-organisations.js';
import { adminOrganisationUsageRoutes } from './routes/admin-organisation-usage.js';
import { adminOperationsRoutes } from './routes/admin-operations.js';
import { eventRoutes } from './routes/events.js';
import { billingRoutes } from './routes/billing.js';
import { orgTokenRoutes } from './routes/org-tokens.js';
import { signupRoutes } from './routes/signup.js';
import { ErrorBody } from './schemas.js';
import { TemporalHealth } from './temporal-health.js';

/** The API: ingest, billing and admin routes, /metrics, /openapi.json, /healthz. */
export async function buildApp(deps: ApiDeps, logger: Logger | boolean = false): Promise<FastifyInstance> {
  const app = Fastify({
    ...(typeof logger === 'object' ? { loggerInstance: logger as FastifyBaseLogger } : { logger }),
    bodyLimit: deps.config.MAX_BODY_BYTES,
    ajv: { customOptions: { allErrors: false, coerceTypes: 'array', removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorate('deps', deps);
  const temporalHealth = new TemporalHealth(deps.temporal, 2_000);
  app.decorate('temporalHealth', temporalHealth);
  app.addHook('onReady', async () => temporalHealth.keepFresh());
  app.addHook('onClose', async () => temporalHealth.stop());
  app.addSchema(ErrorBody);
  await app.register(swagger, {
    // Every /admin route is behind the operator token (api/plugins/admin-auth.ts): say so in the document.
    transform: ({ schema, url }) => ({
      schema: url.startsWith('/admin/') && schema ? { ...schema, security: [{ adminToken: [] }] } : schema,
      url,
    }),
    openapi: {
      info: { title: 'Tally', version: '0.1.0', description: 'Usage ingest, billing and admin API' },
      tags: [{ name: 'ingest' }, { name: 'billing' }, { name: 'admin' }],
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'A producer API key, tally_key_…, from POST /admin/api-keys' },
          adminToken: { type: 'http', scheme: 'bearer', description: "The operators' ADMIN_TOKEN; every /admin route needs it" },
          ...orgTokenSecurityScheme,
        },
      },
    },
  });
  await app.register(metricsPlugin);
  await app.register(gzipBodyPlugin);
  await app.register(jsonBodyPlugin);
  await app.register(apiKeyAuthPlugin);
  await app.register(adminAuthPlugin);
  await app.register(orgAuthPlugin);
  // The billing API's reference for customers, from the same OpenAPI document.
  await app.register(swaggerUi, { routePrefix: '/docs' });

  // Every error answers { code, message, field? }: validation errors name the field.
  app.setErrorHandler((err: { validation?: { instancePath: string; message?: string; params?: { missingProperty?: string } }[]; statusCode?: number; code?: string; message: string }, req, reply) => {
    if (err.validation) {
      const first = err.validation[0];
      // A missing property is reported at its parent: name the property itself.
      const path = [first?.instancePath.replace(/^\//, '').replace(/\//g, '.'), first?.params?.missingProperty].filter(Boolean).join('.');
      const field = path || undefined;
      return reply.code(400).send({ code: 'INVALID_REQUEST', ...(field ? { field } : {}), message: err.message });
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, 'request failed');
    return reply.code(status).send({ code: err.code ?? 'INTERNAL', message: status >= 500 ? `internal error: ${err.message}` : err.message });
  });

  app.setNotFoundHandler((req, reply) => reply.code(404).send({ code: 'ROUTE_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?', 1)[0]}; the routes are in /openapi.json` }));

  app.get('/healthz', { schema: { hide: true } }, async () => ({ ok: true }));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.register(eventRoutes);
  await app.register(batchRoutes);
  await app.register(billingRoutes);
  await app.register(signupRoutes);
  await app.register(orgTokenRoutes);
  await app.register(adminRoutes);
  await app.register(backfillRoutes);
  await app.register(trialRoutes);
  await app.register(apiKeyRoutes);
  // The operators' read views and the admin UI that shows them.
  await app.register(adminOrganisationRoutes);
  await app.register(adminOrganisationUsageRoutes);
  await app.register(adminOperationsRoutes);
  await app.register(adminUiPlugin);
  return app as unknown as FastifyInstance;
}
