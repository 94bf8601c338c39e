import cluster from 'node:cluster';
import fp from 'fastify-plugin';
import client from 'prom-client';
import { clusterMetrics, shareMetricsWithPrimary } from '../cluster.js';
import type { IngestTimings } from '../ingest.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: ApiMetrics;
  }
}

export interface ApiMetrics {
  registry: client.Registry;
  ingestEvents: client.Counter<'status'>;
  ingestAmounts: client.Counter<'amount_type'>;
  ingestBatchEvents: client.Histogram;
  ingestStoreSeconds: client.Histogram<'path'>;
}

/**
 * A batch stored, by HTTP or the forward listener alike: its time in Postgres into
 * `tally_ingest_store_duration_seconds`, its accepted amounts into `tally_ingest_amount_total`.
 */
export function observeIngestStore(
  metrics: Pick<ApiMetrics, 'ingestStoreSeconds' | 'ingestAmounts'>,
  timings: IngestTimings,
  acceptedAmounts: Map<string, number>,
): void {
  if (timings.path) metrics.ingestStoreSeconds.observe({ path: timings.path }, timings.storeMs / 1000);
  for (const [type, value] of acceptedAmounts) metrics.ingestAmounts.inc({ amount_type: type }, value);
}

/** Prometheus metrics of the API on GET /metrics: request latency by route and status, ingest results. */
/** A gauge read from Postgres: every API process sees the same value, so a cluster's sum takes one. */
const fromPostgres = { aggregator: 'first' } as const;

export const metricsPlugin = fp(async (app) => {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'tally_api_' });
  const latencyBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
  const requestSeconds = new client.Histogram({
    name: 'tally_api_request_duration_seconds',
    help: 'API request latency',
    labelNames: ['method', 'route', 'status'],
    buckets: latencyBuckets,
    registers: [registry],
  });
  const metrics: ApiMetrics = {
    registry,
    ingestEvents: new client.Counter({
      name: 'tally_ingest_events_total',
      help: 'Events received over HTTP (POST /v1/events), by result (accepted, duplicate, conflict, invalid); forward-protocol records are in tally_forward_records_total',
      labelNames: ['status'],
      registers: [registry],
    }),
    ingestAmounts: new client.Counter({
      name: 'tally_ingest_amount_total',
      help: 'Sum of accepted amounts, by amount type (HTTP and the forward protocol)',
      labelNames: ['amount_type'],
      registers: [registry],
    }),
    ingestBatchEvents: new client.Histogram({
      name: 'tally_ingest_request_events',
      help: 'Events per ingest request',
      buckets: [1, 10, 50, 100, 250, 500, 1000, 5000],
      registers: [registry],
    }),
    ingestStoreSeconds: new client.Histogram({
      name: 'tally_ingest_store_duration_seconds',
      help: 'Time in Postgres to store an ingest request durably, from a connection in hand to the commit, by path '
        + '(one-statement: every key new; key-by-key: some key seen before)',
      labelNames: ['path'],
      buckets: latencyBuckets,
      registers: [registry],
    }),
  };
  new client.Gauge({
    ...fromPostgres,
    name: 'tally_ingest_key_ledger_keys',
    help: "Keys in the dedupe ledger (Postgres's estimate, from its statistics)",
    registers: [registry],
    async collect() {
      // A scrape while Postgres is down keeps the last value rather than failing the whole page.
      const rows = await quietly(app.deps.db.query<{ n: string }>(
        `SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint AS n
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'event_keys'::regclass`,
      ));
      if (rows) this.set(Number(rows[0]?.n ?? 0));
    },
  });
  new client.Gauge({
    ...fromPostgres,
    name: 'tally_ingest_outbox_waiting_batches',
    help: 'Accepted batches not yet written to BigQuery',
    registers: [registry],
    async collect() {
      const rows = await quietly(app.deps.db.query<{ n: number }>('SELECT count(*)::int AS n FROM ingest_batches WHERE written_at IS NULL'));
      if (rows) this.set(rows[0]?.n ?? 0);
    },
  });
  new client.Gauge({
    ...fromPostgres,
    name: 'tally_reconciliation_differences',
    help: "Differences between usage, the upload ledger and Zuora, by kind, in each day's latest reconciliation",
    labelNames: ['kind'],
    registers: [registry],
    async collect() {
      const rows = await quietly(app.deps.db.query<{ kind: string; n: number }>(
        `SELECT kind, count(*)::int AS n FROM reconciliation_differences
         WHERE run_id IN (SELECT max(id) FROM reconciliation_runs GROUP BY billing_day) GROUP BY kind`,
      ));
      if (!rows) return;
      this.reset();
      for (const kind of ['not_uploaded', 'ledger_behind', 'missing_in_zuora', 'quantity_differs', 'unknown_in_zuora']) {
        this.set({ kind }, rows.find((r) => r.kind === kind)?.n ?? 0);
      }
    },
  });
  new client.Gauge({
    ...fromPostgres,
    name: 'tally_usage_restatements',
    help: 'Changes to lines of closed days since the start (usage_restatements), by reason and whether Zuora already held the day',
    labelNames: ['reason', 'uploaded_before'],
    registers: [registry],
    async collect() {
      const rows = await quietly(app.deps.db.query<{ reason: string; uploaded_before: boolean; n: number }>(
        'SELECT reason, uploaded_before, count(*)::int AS n FROM usage_restatements GROUP BY reason, uploaded_before',
      ));
      if (!rows) return;
      this.reset();
      for (const reason of ['late-usage', 'backfill', 'recompute']) {
        for (const uploaded of [false, true]) {
          this.set({ reason, uploaded_before: String(uploaded) }, rows.find((r) => r.reason === reason && r.uploaded_before === uploaded)?.n ?? 0);
        }
      }
    },
  });
  new client.Gauge({
    ...fromPostgres,
    name: 'tally_aggregation_dirty_days',
    help: '(customer, day) pairs with events not yet aggregated, and of those the ones for days already closed (late usage)',
    labelNames: ['late'],
    registers: [registry],
    async collect() {
      const rows = await quietly(app.deps.db.query<{ late: boolean; n: number }>('SELECT late, count(*)::int AS n FROM dirty_days GROUP BY late'));
      if (!rows) return;
      for (const late of [false, true]) this.set({ late: String(late) }, rows.find((r) => r.late === late)?.n ?? 0);
    },
  });
  app.decorate('metrics', metrics);
  app.addHook('onResponse', async (req, reply) => {
    requestSeconds.observe(
      { method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });
  // In a cluster (API_PROCESSES > 1) any process answers with the sum of all of them.
  if (cluster.isWorker) shareMetricsWithPrimary(registry);
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return cluster.isWorker ? clusterMetrics() : registry.metrics();
  });
});

async function quietly<T>(query: Promise<{ rows: T[] }>): Promise<T[] | undefined> {
  return query.then((r) => r.rows, () => undefined);
}
