import fp from 'fastify-plugin';
import client from 'prom-client';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: ApiMetrics;
  }
}

export interface ApiMetrics {
  registry: client.Registry;
  ingestEvents: client.Counter<'status'>;
  ingestAmounts: client.Counter<'amount_type'>;
}

/** Prometheus metrics of the API on GET /metrics: request latency by route and status, ingest results. */
export const metricsPlugin = fp(async (app) => {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'tally_api_' });
  const requestSeconds = new client.Histogram({
    name: 'tally_api_request_duration_seconds',
    help: 'API request latency',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const metrics: ApiMetrics = {
    registry,
    ingestEvents: new client.Counter({
      name: 'tally_ingest_events_total',
      help: 'Events received by the ingest API, by result (accepted, duplicate, conflict, invalid)',
      labelNames: ['status'],
      registers: [registry],
    }),
    ingestAmounts: new client.Counter({
      name: 'tally_ingest_amount_total',
      help: 'Sum of accepted amounts, by amount type',
      labelNames: ['amount_type'],
      registers: [registry],
    }),
  };
  app.decorate('metrics', metrics);
  app.addHook('onResponse', async (req, reply) => {
    requestSeconds.observe(
      { method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
});
