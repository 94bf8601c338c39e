import client from 'prom-client';
import type { WireEvent } from './usage-event.js';

/**
 * What finally became of an event: the server's answer, or the client's reason for not
 * delivering it (`buffer_full`: not kept because the buffer was full; `lost`: not delivered by
 * the close() deadline or within maxRetries). A spilled event is not final: it is counted again
 * when the server answers for it.
 */
export type EventStatus = 'accepted' | 'duplicate' | 'conflict' | 'invalid' | 'buffer_full' | 'lost';

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
  amounts: client.Counter<'status' | 'amount_type'>;
  requests: client.Counter<'outcome'>;
  requestSeconds: client.Histogram<'outcome'>;
  spill: client.Counter<'action'>;
  /** Counts each event once per amount type it carries, as the Go client did, and sums its amounts. */
  countEvents(status: EventStatus, events: readonly WireEvent[]): void;
  /**
   * The same for one event on the addAmounts path: summed in plain numbers and handed to
   * prom-client once the caller's synchronous run ends, so a burst against a full buffer costs no label lookups.
   */
  countEventSoon(status: EventStatus, event: WireEvent): void;
  /** Reports this client's buffer depth in billing_client_buffered_events until the returned function is called. */
  trackBuffer(size: () => number): () => void;
}

// A registry's buffer gauge sums the depths of the clients on it, read at scrape time: nothing on the addAmounts path.
const bufferSources = new WeakMap<client.Registry, Set<() => number>>();

/**
 * The client's metrics on `registry`. Several clients in one process may share a registry: a
 * metric already registered there is reused rather than registered twice (which prom-client
 * refuses), so their counts add up.
 */
export function createClientMetrics(registry: client.Registry): ClientMetrics {
  const events = reuse(registry, 'billing_client_events_total', () => new client.Counter({
    name: 'billing_client_events_total',
    help: 'Usage events by what became of them (accepted, duplicate, conflict, invalid, buffer_full, lost), once per amount type',
    labelNames: ['status', 'amount_type'] as const,
    registers: [registry],
  }));
  const amounts = reuse(registry, 'billing_client_amounts_total', () => new client.Counter({
    name: 'billing_client_amounts_total',
    help: 'Sum of the amounts of usage events, by what became of them and amount type',
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
    help: 'Duration of requests to the ingest API (send latency), by outcome',
    labelNames: ['outcome'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  }));
  const spill = reuse(registry, 'billing_client_spill_events_total', () => new client.Counter({
    name: 'billing_client_spill_events_total',
    help: 'Events written to spill files because the buffer was full (written), and read back to be sent (replayed)',
    labelNames: ['action'] as const,
    registers: [registry],
  }));
  let sources = bufferSources.get(registry);
  if (!sources) {
    const all = new Set<() => number>();
    bufferSources.set(registry, all);
    sources = all;
    new client.Gauge({
      name: 'billing_client_buffered_events',
      help: 'Events held in memory by the client: waiting to be sent or in a request not yet answered',
      registers: [registry],
      collect() {
        let depth = 0;
        for (const size of all) depth += size();
        this.set(depth);
      },
    });
  }
  const tracked = sources;
  let soon: Map<EventStatus, Map<string, { events: number; sum: number }>> | undefined;
  const flushSoon = () => {
    const pending = soon!;
    soon = undefined;
    for (const [status, byType] of pending) {
      for (const [type, t] of byType) {
        events.inc({ status, amount_type: type }, t.events);
        amounts.inc({ status, amount_type: type }, t.sum);
      }
    }
  };
  return {
    events, amounts, requests, requestSeconds, spill,
    countEvents(status, batch) {
      // One inc per amount type rather than per event: a batch of 500 is a handful of label lookups.
      const byType = new Map<string, [events: number, sum: number]>();
      for (const e of batch) {
        for (const [type, value] of Object.entries(e.amounts)) {
          const t = byType.get(type);
          if (t) { t[0]++; t[1] += value; } else byType.set(type, [1, value]);
        }
      }
      for (const [type, [n, sum]] of byType) {
        events.inc({ status, amount_type: type }, n);
        amounts.inc({ status, amount_type: type }, sum);
      }
    },
    countEventSoon(status, event) {
      if (!soon) {
        soon = new Map();
        queueMicrotask(flushSoon);
      }
      let byType = soon.get(status);
      if (!byType) soon.set(status, (byType = new Map()));
      for (const type in event.amounts) {
        const value = event.amounts[type]!;
        const t = byType.get(type);
        if (t) { t.events++; t.sum += value; } else byType.set(type, { events: 1, sum: value });
      }
    },
    trackBuffer(size) {
      tracked.add(size);
      return () => tracked.delete(size);
    },
  };
}

function reuse<T extends client.Metric>(registry: client.Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}
