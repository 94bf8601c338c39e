import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { buildApp } from '../api/app.js';
import { createPool } from '../db/pool.js';
import { billingDayOf } from '../core/billing-day.js';
import { freePort } from '../devstack/process.js';
import { startTestTally, type TestTally } from './support/stack.js';

// What the ingest API does when a dependency is down or the input is bad: a clear answer, nothing half-kept.

let tally: TestTally;
const run = randomBytes(3).toString('hex');
const today = billingDayOf(Date.now());
const event = (n: number) => ({
  uniqueKey: `${run}-${n}`,
  internalInstanceId: `inst-${run}`,
  timestamp: `${today}T00:00:01Z`,
  amounts: { 'container-seconds': 10 },
});

async function keptRows(): Promise<{ keys: number; batches: number }> {
  const keys = await tally.db.query('SELECT count(*)::int AS n FROM event_keys WHERE event_key LIKE $1', [`${run}-%`]);
  const batches = await tally.db.query('SELECT count(*)::int AS n FROM ingest_batches');
  return { keys: keys.rows[0].n, batches: batches.rows[0].n };
}

beforeAll(async () => {
  tally = await startTestTally();
});
afterAll(async () => {
  await tally?.close();
});

describe('ingest when a dependency is down', () => {
  it('answers 503 with Retry-After and keeps nothing when Temporal is unreachable; the retry then succeeds', async () => {
    const deadTemporal = new Client({ connection: Connection.lazy({ address: `127.0.0.1:${await freePort()}` }) });
    const app = await buildApp({ ...tally, temporal: deadTemporal });
    const res = await app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events: [event(1), event(2)] } });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json()).toMatchObject({ code: 'INGEST_UNAVAILABLE', message: expect.stringContaining('temporal is unavailable') });
    expect(await keptRows()).toEqual({ keys: 0, batches: 0 });
    await app.close();

    const retry = await tally.app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events: [event(1), event(2)] } });
    expect(retry.statusCode).toBe(200);
    expect(retry.json().results.map((r: { status: string }) => r.status)).toEqual(['accepted', 'accepted']);
    expect(await keptRows()).toEqual({ keys: 2, batches: 1 });
  });

  it('answers 503 with Retry-After when Postgres is unreachable', async () => {
    const deadDb = createPool(`postgres://tally:tally@127.0.0.1:${await freePort()}/tally`, 1);
    const app = await buildApp({ ...tally, db: deadDb });
    const res = await app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events: [event(3)] } });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json().message).toContain('postgres is unavailable');
    await app.close();
    await deadDb.end();
    expect((await keptRows()).keys).toBe(2);
  });
});

describe('ingest of bad input', () => {
  it('answers 400 naming the field when the body is not a batch of events', async () => {
    const notJson = await tally.app.inject({ method: 'POST', url: '/v1/events', headers: { ...tally.auth, 'content-type': 'application/json' }, payload: '{"events": [' });
    expect(notJson.statusCode).toBe(400);
    const noEvents = await tally.app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events: [] } });
    expect(noEvents.statusCode).toBe(400);
    expect(noEvents.json()).toMatchObject({ code: 'INVALID_REQUEST', field: 'events' });
    const tooMany = await tally.app.inject({
      method: 'POST', url: '/v1/events', headers: tally.auth,
      payload: { events: Array.from({ length: tally.config.MAX_EVENTS_PER_REQUEST + 1 }, (_, i) => event(1000 + i)) },
    });
    expect(tooMany.statusCode).toBe(400);
    expect(tooMany.json().message).toContain(`${tally.config.MAX_EVENTS_PER_REQUEST}`);
  });

  it('answers 400 with a result per event when every event is invalid, and keeps nothing', async () => {
    const res = await tally.app.inject({
      method: 'POST', url: '/v1/events', headers: tally.auth,
      payload: { events: [{ ...event(4), amounts: {} }, { ...event(5), internalInstanceId: '' }, 'not an object'] },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().results).toEqual([
      { index: 0, uniqueKey: `${run}-4`, status: 'invalid', field: 'amounts', reason: 'must hold at least one amount' },
      { index: 1, uniqueKey: `${run}-5`, status: 'invalid', field: 'internalInstanceId', reason: expect.any(String) },
      { index: 2, status: 'invalid', field: '(event)', reason: expect.any(String) },
    ]);
    expect(res.json().batchId).toBeNull();
    expect((await keptRows()).keys).toBe(2);
  });
});

describe('what operators see', () => {
  it('serves an OpenAPI document and Prometheus metrics', async () => {
    const openapi = await tally.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(Object.keys(openapi.json().paths)).toEqual(
      expect.arrayContaining(['/v1/events', '/v1/organisations/{orgId}/usage', '/admin/organisations', '/admin/aggregations', '/admin/uploads']),
    );
    const metrics = await tally.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/tally_ingest_events_total\{status="accepted"\} 2/);
    expect(metrics.body).toMatch(/tally_ingest_events_total\{status="invalid"\} 3/);
    expect(metrics.body).toContain('tally_api_request_duration_seconds_bucket');
    expect(metrics.body).toMatch(/tally_ingest_request_events_count \d+/);
    expect(metrics.body).toMatch(/tally_ingest_key_ledger_keys \d+/);
    expect(metrics.body).toMatch(/tally_ingest_outbox_waiting_batches \d+/);
  });
});
