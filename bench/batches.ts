// The ingest benchmarks' request bodies: one JSON body of `size` events, each dated today.
import { randomUUID } from 'node:crypto';
import { billingDayOf } from '../core/billing-day.js';

/**
 * Keys `run` (the default): `<prefix>-<request>-<event>`, so a request's keys are adjacent in the
 * ledger's index; `random`: a UUID per event, spread over the whole index (docs/benchmarks.md).
 */
export type BenchKeys = 'run' | 'random';

export function benchBody(prefix: string, request: number, size: number, keys: BenchKeys = 'run'): Buffer {
  const day = billingDayOf(Date.now());
  return Buffer.from(JSON.stringify({
    events: Array.from({ length: size }, (_, i) => ({
      uniqueKey: keys === 'random' ? randomUUID() : `${prefix}-${request}-${i}`,
      internalInstanceId: `bench-instance-${i % 50}`,
      timestamp: `${day}T00:${String(i % 60).padStart(2, '0')}:00Z`,
      amounts: { 'container-seconds': 1 + (i % 3600), 'node-seconds': 60 },
      metadata: { service: 'bench' },
    })),
  }));
}
