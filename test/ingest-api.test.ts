import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { billingDayOf } from '../core/billing-day.js';
import { startTestTally, type TestTally } from './support/stack.js';

let tally: TestTally;
const run = randomBytes(3).toString('hex');
const today = billingDayOf(Date.now());
const event = (n: number) => ({
  uniqueKey: `${run}-${n}`,
  internalInstanceId: `inst-${run}`,
  timestamp: `${today}T00:00:01Z`,
  amounts: { 'node-seconds': n },
});

beforeAll(async () => {
  tally = await startTestTally({ MAX_BODY_BYTES: String(64 * 1024) });
});
afterAll(async () => {
  await tally?.close();
});

describe('gzip request bodies', () => {
  it('are accepted', async () => {
    const res = await tally.app.inject({
      method: 'POST', url: '/v1/events',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      payload: gzipSync(JSON.stringify({ events: [event(1), event(2)] })),
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().results.map((r: { status: string }) => r.status)).toEqual(['accepted', 'accepted']);
  });

  it('are measured decompressed against the body limit', async () => {
    const padding = 'x'.repeat(200 * 1024); // compresses to a few hundred bytes
    const res = await tally.app.inject({
      method: 'POST', url: '/v1/events',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      payload: gzipSync(JSON.stringify({ events: [{ ...event(3), metadata: { padding } }] })),
    });
    expect(res.statusCode).toBe(413);
  });

  it('other encodings get 415 naming the encoding', async () => {
    const res = await tally.app.inject({
      method: 'POST', url: '/v1/events',
      headers: { 'content-type': 'application/json', 'content-encoding': 'br' },
      payload: '{}',
    });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toMatchObject({ code: 'UNSUPPORTED_ENCODING', message: expect.stringContaining('br') });
  });
});

describe('batch status', () => {
  it('follows a batch from accepted to written, with its workflow link', async () => {
    const res = await tally.app.inject({ method: 'POST', url: '/v1/events', payload: { events: [event(10), event(11), event(12)] } });
    const { batchId, workflowId } = res.json();
    const first = await tally.app.inject({ method: 'GET', url: `/v1/batches/${batchId}` });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ batchId, eventCount: 3, workflowId, temporalUrl: expect.stringContaining(workflowId) });
    expect(['accepted', 'written']).toContain(first.json().status);
    await tally.temporal.workflow.getHandle(workflowId).result();
    const later = await tally.app.inject({ method: 'GET', url: `/v1/batches/${batchId}` });
    expect(later.json()).toMatchObject({ status: 'written', writtenAt: expect.any(String) });
  });

  it('answers 404 for an unknown batch and 400 for a malformed id', async () => {
    expect((await tally.app.inject({ method: 'GET', url: `/v1/batches/${randomUUID()}` })).statusCode).toBe(404);
    const bad = await tally.app.inject({ method: 'GET', url: '/v1/batches/not-a-uuid' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'INVALID_REQUEST', field: 'batchId' });
  });
});
