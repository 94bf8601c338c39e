import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FluentClient } from '@fluent-org/logger';
import pino from 'pino';
import { startApiService, type ApiService } from '../api/service.js';
import { addDays, billingDayOf } from '../core/billing-day.js';
import { startTestTally, type TestTally } from './support/stack.js';

// The API process as api/main.ts starts it (startApiService): the HTTP API and the Fluentd
// forward listener, over one pool and one metrics registry.

let tally: TestTally;
let service: ApiService;

beforeAll(async () => {
  tally = await startTestTally();
  service = await startApiService(
    { ...tally.config, API_HOST: '127.0.0.1', API_PORT: 0, FORWARD_ENABLED: true, FORWARD_HOST: '127.0.0.1', FORWARD_PORT: 0 },
    pino({ level: 'silent' }),
  );
}, 60_000);
afterAll(async () => {
  await service?.stop();
  await tally?.close();
});

describe('the API service', () => {
  it("counts a batch taken through the forward listener in the API's histogram of time in Postgres and in its amounts counter", async () => {
    const [host, port] = service.forwardAddress!.split(':');
    const client = new FluentClient('billing', { eventMode: 'Message', ack: { ackTimeout: 20_000 }, socket: { host: host!, port: Number(port) } });
    const key = `service-${Date.now()}`;
    await client.emit({
      unique_key: `${key}:container-seconds`, internal_instance_id: 'service-instance', amount_type: 'container-seconds', amount_value: 5,
      occurred_at: `${addDays(billingDayOf(Date.now()), -1)}T10:00:00Z`, metadata: {},
    });
    await client.disconnect();
    const stored = await tally.db.query('SELECT count(*)::int AS n FROM event_keys WHERE event_key = $1', [`${key}:container-seconds`]);
    expect(stored.rows[0].n).toBe(1);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toMatch(/^tally_ingest_store_duration_seconds_count\{path="one-statement"\} 1$/m);
    expect(metrics).toMatch(/^tally_ingest_amount_total\{amount_type="container-seconds"\} 5$/m);
  });
});
