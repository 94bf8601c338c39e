import client from 'prom-client';
import type { WireEvent } from './usage-event.js';

/** What became of an event: the server's answer, or the client's own reason for not sending it. */
export type EventStatus = 'accepted' | 'duplicate' | 'conflict' | 'invalid' | 'dropped' | 'lost';

/** How one POST ended, as seen by the client. */
export type RequestOutcome =
  | 'ok' // 2xx with a result per event
  | 'rejected' // 400 with a result per event (every event invalid)
  | 'client_error' // another 4xx: permanent, nothing accepted
  | 'throttled' // 429
  | 'unavailable' // 503
  | 'server_error' // another 5xx
  | 'bad_response' // a 2xx/400 body without a result for every event
  | 'network_error'
  | 'timeout'
  | 'aborted'; // cut off by the close() deadline

export interface ClientMetrics {
  events: client.Counter<'status' | 'amount_type'>;
  requests: client.Counter<'outcome'>;
  requestSeconds: client.Histogram<'outcome'>;
  buffered: client.Gauge;
  /** Counts each event once per amount type it carries, as the Go client did. */
  countEvents(status: EventStatus, events: readonly WireEvent[]): void;
}

/**
 * The client's metrics on `registry`. Several clients in one process may share a registry: a
 * metric already registered there is reused rather than registered twice (which prom-client
 * refuses), so their counts add up.
 */
export function createClientMetrics(registry: client.Registry): ClientMetrics {
  const events = reuse(registry, 'billing_client_events_total', () => new client.Counter({
    name: 'billing_client_events_total',
    help: 'Usage events by what became of them (accepted, duplicate, conflict, invalid, dropped, lost), once per amount type',
    labelNames: ['status', 'amount_type'] as const,
    registers: [registry],
  }));
  const requests = reuse(registry, 'billing_client_requests_total', () => new client.Counter({
    name: 'billing_client_requests_total',
    help: 'Requests to the ingest API by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry],
  }));
  const requestSeconds = reuse(registry, 'billing_client_request_duration_seconds', () => new client.Histogram({
    name: 'billing_client_request_duration_seconds',
    help: 'Duration of requests to the ingest API, by outcome',
    labelNames: ['outcome'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  }));
  const buffered = reuse(registry, 'billing_client_buffered_events', () => new client.Gauge({
    name: 'billing_client_buffered_events',
    help: 'Events held by the client: waiting to be sent or in a request not yet answered',
    registers: [registry],
  }));
  return {
    events, requests, requestSeconds, buffered,
    countEvents(status, batch) {
      // One inc per amount type rather than per event: a batch of 500 is a handful of label lookups.
      const byType = new Map<string, number>();
      for (const e of batch) for (const type of Object.keys(e.amounts)) byType.set(type, (byType.get(type) ?? 0) + 1);
      for (const [type, n] of byType) events.inc({ status, amount_type: type }, n);
    },
  };
}

function reuse<T extends client.Metric>(registry: client.Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}
