import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Registry } from 'prom-client';
import { BillingClient, BillingClientError, WeaveNetSeconds, type BillingClientLogger, type BillingClientOptions } from '../client/index.js';
import { addDays, billingDayOf, type BillingDay } from '../core/billing-day.js';
import { freePort } from '../devstack/process.js';
import { startTestTally, type TestTally } from './support/stack.js';

// The billing client against the real ingest API (Fastify on a real port, Postgres, Temporal,
// the BigQuery emulator). Faults are made by a real HTTP hop in front of the API, never by a fake Tally.

let tally: TestTally;
let apiUrl: string;
let apiKey: string;
const run = randomBytes(3).toString('hex');
const instanceId = `inst-${run}`;
const today = billingDayOf(Date.now());

beforeAll(async () => {
  tally = await startTestTally();
  apiUrl = await tally.app.listen({ port: 0, host: '127.0.0.1' });
  const issued = await tally.app.inject({ method: 'POST', url: '/admin/api-keys', headers: tally.adminAuth, payload: { name: `client-test-${run}`, scopes: ['ingest'] } });
  expect(issued.statusCode).toBe(201);
  apiKey = issued.json().key;
});
afterAll(async () => {
  await tally?.close();
});

/** A key prefix of its own for each test, so that rows in event_keys tell whose they are. */
function keyPrefix(): string {
  return `${run}-${randomBytes(3).toString('hex')}-`;
}

function noon(day: BillingDay): Date {
  return new Date(`${day}T12:00:00.000Z`);
}

async function storedKeys(prefix: string): Promise<string[]> {
  const { rows } = await tally.db.query<{ event_key: string }>(
    'SELECT event_key FROM event_keys WHERE event_key LIKE $1 ORDER BY event_key', [`${prefix}%`],
  );
  return rows.map((r) => r.event_key);
}

/** A metric's values by one label, summed over the others. */
async function sumBy(registry: Registry, metric: string, label: string): Promise<Record<string, number>> {
  const values = (await registry.getSingleMetric(metric)!.get()).values;
  const sums: Record<string, number> = {};
  for (const v of values) {
    const key = String(v.labels[label] ?? '');
    sums[key] = (sums[key] ?? 0) + v.value;
  }
  return sums;
}

async function gauge(registry: Registry, metric: string): Promise<number> {
  return (await registry.getSingleMetric(metric)!.get()).values[0]?.value ?? 0;
}

/** Waits until the ingest workflows have written `rows` rows for the day to BigQuery. */
async function bigQueryRows(day: BillingDay, rows: number): Promise<{ rows: number; distinctInsertIds: number }> {
  const until = Date.now() + 30_000;
  let count = await tally.rawEvents.countRows(day);
  while (count.rows < rows && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 250));
    count = await tally.rawEvents.countRows(day);
  }
  return count;
}

interface CapturedLine { level: string; obj: Record<string, unknown>; msg: string }
function captureLogger(): BillingClientLogger & { lines: CapturedLine[] } {
  const lines: CapturedLine[] = [];
  const at = (level: string) => (obj: object, msg: string) => { lines.push({ level, obj: obj as Record<string, unknown>, msg }); };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function newClient(options: Partial<BillingClientOptions> = {}) {
  const logger = captureLogger();
  const client = new BillingClient({ url: apiUrl, apiKey, logger, retryBaseDelayMs: 10, ...options });
  return { client, logger };
}

type Fault = 'unavailable' | 'forward-then-unavailable' | 'hang' | 'reset';

/**
 * A real HTTP proxy in front of the API: request n meets faults[n], or is forwarded when there is
 * none. 'forward-then-unavailable' lets the API accept the batch and loses its answer on the way back.
 */
async function startProxy(target: string, faults: Fault[], retryAfter = '0') {
  const seenAt: number[] = [];
  const headers: http.IncomingHttpHeaders[] = [];
  const bodyBytes: number[] = [];
  const server = http.createServer(async (req, res) => {
    const fault = faults[seenAt.length];
    seenAt.push(Date.now());
    headers.push(req.headers);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    bodyBytes.push(Buffer.concat(chunks).length);
    if (fault === 'hang') return;
    if (fault === 'reset') return req.socket.destroy();
    const unavailable = () => res.writeHead(503, { 'retry-after': retryAfter, 'content-type': 'application/json' })
      .end(JSON.stringify({ code: 'PROXY_UNAVAILABLE', message: 'injected by the test proxy' }));
    if (fault === 'unavailable') return unavailable();
    const upstream = await fetch(new URL(req.url ?? '/', target), {
      method: req.method ?? 'POST',
      headers: {
        'content-type': req.headers['content-type'] ?? 'application/json',
        authorization: req.headers.authorization ?? '',
        ...(req.headers['content-encoding'] ? { 'content-encoding': req.headers['content-encoding'] } : {}),
      },
      body: Buffer.concat(chunks),
    });
    const body = await upstream.text();
    if (fault === 'forward-then-unavailable') return unavailable();
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seenAt,
    headers,
    bodyBytes,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('BillingClient against the real ingest API', () => {
  it('delivers every event exactly once by close(), in full batches, and counts them', async () => {
    const prefix = keyPrefix();
    const day = addDays(today, -3);
    const { client } = newClient({ maxBatchEvents: 500, flushIntervalMs: 60_000, maxBufferedEvents: 2_000 });
    for (let n = 0; n < 1100; n++) {
      client.addAmounts(`${prefix}${String(n).padStart(4, '0')}`, instanceId, noon(day), { 'container-seconds': n, 'node-seconds': 1 }, { n: String(n) });
    }
    expect(await gauge(client.registry, 'billing_client_buffered_events')).toBe(1100);
    expect(await client.close()).toEqual({ undelivered: [], spilled: [] });

    expect(await storedKeys(prefix)).toHaveLength(1100);
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ accepted: 2200 }); // once per amount type
    expect(await sumBy(client.registry, 'billing_client_events_total', 'amount_type')).toEqual({ 'container-seconds': 1100, 'node-seconds': 1100 });
    expect(await sumBy(client.registry, 'billing_client_requests_total', 'outcome')).toEqual({ ok: 3 }); // 500 + 500 + 100
    expect(await gauge(client.registry, 'billing_client_buffered_events')).toBe(0);
    // One BigQuery row per event and amount type, none twice.
    expect(await bigQueryRows(day, 2200)).toEqual({ rows: 2200, distinctInsertIds: 2200 });

    expect(() => client.addAmounts(`${prefix}late`, instanceId, noon(day), { samples: 1 }))
      .toThrow(expect.objectContaining({ name: 'BillingClientError', code: 'CLOSED' }));
  });

  it('sends a partial batch after the flush interval, without close()', async () => {
    const prefix = keyPrefix();
    const { client } = newClient({ flushIntervalMs: 100 });
    client.addAmounts(`${prefix}1`, instanceId, new Date(), { samples: 7 });
    const until = Date.now() + 5_000;
    while ((await storedKeys(prefix)).length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
    expect(await storedKeys(prefix)).toEqual([`${prefix}1`]);
    await client.close();
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ accepted: 1 });
  });

  it('retries a batch the server answered 503, honouring Retry-After: 0, and it arrives once', async () => {
    const prefix = keyPrefix();
    const proxy = await startProxy(apiUrl, ['unavailable', 'unavailable']);
    const { client, logger } = newClient({ url: proxy.url });
    for (let n = 0; n < 20; n++) client.addAmounts(`${prefix}${n}`, instanceId, new Date(), { 'container-seconds': 60 });
    await client.close();
    await proxy.close();

    expect(proxy.seenAt).toHaveLength(3);
    // The same batch each time: same size on the wire, gzipped.
    expect(proxy.headers.map((h) => h['content-encoding'])).toEqual(['gzip', 'gzip', 'gzip']);
    expect(new Set(proxy.bodyBytes).size).toBe(1);
    expect(await storedKeys(prefix)).toHaveLength(20);
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ accepted: 20 });
    expect(await sumBy(client.registry, 'billing_client_requests_total', 'outcome')).toEqual({ unavailable: 2, ok: 1 });
    expect(logger.lines.filter((l) => l.msg.includes('retrying'))).toHaveLength(2);
    expect(logger.lines.find((l) => l.msg.includes('retrying'))?.obj).toMatchObject({ delayMs: 0, reason: expect.stringContaining('PROXY_UNAVAILABLE') });
  });

  it('waits as long as Retry-After says before retrying', async () => {
    const prefix = keyPrefix();
    const proxy = await startProxy(apiUrl, ['unavailable'], '1');
    const { client } = newClient({ url: proxy.url });
    client.addAmounts(`${prefix}1`, instanceId, new Date(), { samples: 1 });
    await client.close();
    await proxy.close();
    expect(proxy.seenAt).toHaveLength(2);
    expect(proxy.seenAt[1]! - proxy.seenAt[0]!).toBeGreaterThanOrEqual(950);
    expect(await storedKeys(prefix)).toEqual([`${prefix}1`]);
  });

  it('resends a batch whose answer was lost after the server stored it: duplicates, stored once', async () => {
    const prefix = keyPrefix();
    const day = addDays(today, -4);
    const proxy = await startProxy(apiUrl, ['forward-then-unavailable']);
    const { client } = newClient({ url: proxy.url });
    for (let n = 0; n < 30; n++) client.addAmounts(`${prefix}${n}`, instanceId, noon(day), { 'node-seconds': 3600 });
    await client.close();
    await proxy.close();

    expect(proxy.seenAt).toHaveLength(2);
    expect(await storedKeys(prefix)).toHaveLength(30);
    // The server had them already: the resend is answered `duplicate`, which is success.
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ duplicate: 30 });
    expect(await bigQueryRows(day, 30)).toEqual({ rows: 30, distinctInsertIds: 30 });
  });

  it('retries after a request timeout and after a dropped connection', async () => {
    const prefix = keyPrefix();
    const proxy = await startProxy(apiUrl, ['hang', 'reset']);
    // Long enough for the real API under load (a Temporal start), short enough to keep the test quick.
    const { client } = newClient({ url: proxy.url, requestTimeoutMs: 2_000 });
    for (let n = 0; n < 5; n++) client.addAmounts(`${prefix}${n}`, instanceId, new Date(), { samples: n });
    await client.close();
    await proxy.close();

    expect(proxy.seenAt).toHaveLength(3);
    expect(await storedKeys(prefix)).toHaveLength(5);
    expect(await sumBy(client.registry, 'billing_client_requests_total', 'outcome')).toEqual({ timeout: 1, network_error: 1, ok: 1 });
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ accepted: 5 });
  });

  it('counts conflict and invalid results with their reasons and does not retry them', async () => {
    const prefix = keyPrefix();
    const seeded = await tally.app.inject({
      method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${apiKey}` },
      payload: { events: [{ uniqueKey: `${prefix}taken`, internalInstanceId: instanceId, timestamp: new Date().toISOString(), amounts: { samples: 5 } }] },
    });
    expect(seeded.json().results[0].status).toBe('accepted');

    const proxy = await startProxy(apiUrl, []);
    const rejected: Array<[string, string, string]> = [];
    const { client, logger } = newClient({ url: proxy.url, onRejected: (event, status, reason) => rejected.push([event.uniqueKey, status, reason]) });
    client.addAmounts(`${prefix}taken`, instanceId, new Date(), { samples: 6 }); // same key, another payload
    client.addAmounts(`${prefix}bogus`, instanceId, new Date(), { 'bogus-seconds': 1 });
    client.addAmounts(`${prefix}ancient`, instanceId, new Date(Date.now() - 100 * 86_400_000), { samples: 1 });
    client.addAmounts(`${prefix}good`, instanceId, new Date(), { samples: 1 });
    await client.close();
    await proxy.close();

    expect(proxy.seenAt).toHaveLength(1);
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ conflict: 1, invalid: 2, accepted: 1 });
    expect(await storedKeys(prefix)).toEqual([`${prefix}good`, `${prefix}taken`]);
    expect(rejected).toEqual(expect.arrayContaining([
      [`${prefix}taken`, 'conflict', expect.any(String)],
      [`${prefix}bogus`, 'invalid', expect.stringMatching(/^amounts\.bogus-seconds: .*unknown amount type/)],
      [`${prefix}ancient`, 'invalid', expect.stringMatching(/^timestamp: /)],
    ]));
    expect(rejected).toHaveLength(3);
    const logged = logger.lines.find((l) => l.msg.includes('rejected events'));
    expect(logged?.obj).toMatchObject({ failed: 3, events: 4 });
    expect(logged?.obj.examples).toEqual(expect.arrayContaining([
      expect.objectContaining({ uniqueKey: `${prefix}taken`, status: 'conflict' }),
      expect.objectContaining({ uniqueKey: `${prefix}bogus`, status: 'invalid', field: 'amounts.bogus-seconds', reason: expect.stringContaining('unknown amount type') }),
      expect.objectContaining({ uniqueKey: `${prefix}ancient`, status: 'invalid', field: 'timestamp' }),
    ]));
  });

  it('handles a 400 with per-event results per event, and another 4xx as permanent', async () => {
    const prefix = keyPrefix();
    const { client: allInvalid } = newClient();
    allInvalid.addAmounts(`${prefix}a`, instanceId, new Date(), { 'bogus-seconds': 1 });
    allInvalid.addAmounts(`${prefix}b`, instanceId, new Date(), { 'bogus-seconds': 2 });
    await allInvalid.close();
    expect(await sumBy(allInvalid.registry, 'billing_client_requests_total', 'outcome')).toEqual({ rejected: 1 });
    expect(await sumBy(allInvalid.registry, 'billing_client_events_total', 'status')).toEqual({ invalid: 2 });

    const { client: wrongPath, logger } = newClient({ url: `${apiUrl}/no-such-prefix` });
    wrongPath.addAmounts(`${prefix}c`, instanceId, new Date(), { samples: 1 });
    await wrongPath.close();
    expect(await sumBy(wrongPath.registry, 'billing_client_requests_total', 'outcome')).toEqual({ client_error: 1 });
    expect(await sumBy(wrongPath.registry, 'billing_client_events_total', 'status')).toEqual({ invalid: 1 });
    expect(logger.lines.find((l) => l.level === 'error')?.obj).toMatchObject({ httpStatus: 404 });
    expect(await storedKeys(prefix)).toEqual([]);
  });

  it('treats a refused API key as permanent: counted, logged with the reason, not retried', async () => {
    const prefix = keyPrefix();
    const { client, logger } = newClient({ apiKey: 'not-a-tally-key' });
    client.addAmounts(`${prefix}1`, instanceId, new Date(), { samples: 1 });
    await client.close();
    expect(await sumBy(client.registry, 'billing_client_requests_total', 'outcome')).toEqual({ client_error: 1 });
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ invalid: 1 });
    expect(logger.lines.find((l) => l.level === 'error')?.obj).toMatchObject({ httpStatus: 401, reason: expect.stringContaining('API_KEY_MALFORMED') });
    expect(await storedKeys(prefix)).toEqual([]);
  });

  it('rejects new events when the buffer is full (overflow: reject), telling the caller and counting them', async () => {
    const prefix = keyPrefix();
    const { client, logger } = newClient({ maxBufferedEvents: 5, flushIntervalMs: 60_000 });
    const statuses = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => client.addAmounts(`${prefix}${n}`, instanceId, new Date(), { [WeaveNetSeconds]: n }));
    expect(statuses).toEqual([...Array(5).fill('buffered'), ...Array(3).fill('buffer_full')]);
    expect(await gauge(client.registry, 'billing_client_buffered_events')).toBe(5);
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ buffer_full: 3 });
    expect(await sumBy(client.registry, 'billing_client_amounts_total', 'status')).toEqual({ buffer_full: 6 + 7 + 8 });
    expect(logger.lines.filter((l) => l.level === 'warn' && l.msg.includes('buffer is full'))).toHaveLength(1);
    await client.close();

    expect(await storedKeys(prefix)).toEqual([1, 2, 3, 4, 5].map((n) => `${prefix}${n}`));
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ buffer_full: 3, accepted: 5 });
    expect(await sumBy(client.registry, 'billing_client_amounts_total', 'status')).toEqual({ buffer_full: 21, accepted: 15 });
    expect(logger.lines.find((l) => l.msg.includes('has room again'))?.obj).toEqual({ overflowed: 3, overflow: 'reject' });
  });

  it('gives up at the close() deadline when the server is unreachable, and counts the events as lost', async () => {
    const { client, logger } = newClient({ url: `http://127.0.0.1:${await freePort()}`, retryBaseDelayMs: 50 });
    for (let n = 0; n < 3; n++) client.addAmounts(`${keyPrefix()}${n}`, instanceId, new Date(), { samples: 1 });
    const started = Date.now();
    const report = await client.close(700);
    expect(report.undelivered).toHaveLength(3);
    expect(report.spilled).toEqual([]);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(690);
    expect(took).toBeLessThan(2_000);
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ lost: 3 });
    expect((await sumBy(client.registry, 'billing_client_requests_total', 'outcome')).network_error).toBeGreaterThanOrEqual(2);
    expect(logger.lines.find((l) => l.level === 'error' && l.msg.includes('counted as lost'))?.obj).toMatchObject({ lost: 3, deadlineMs: 700 });
    expect(await gauge(client.registry, 'billing_client_buffered_events')).toBe(0);
    expect(() => client.addAmounts('k', instanceId, new Date(), { samples: 1 })).toThrow(BillingClientError);
  });

  it('cuts off a request still in flight at the close() deadline', async () => {
    const proxy = await startProxy(apiUrl, ['hang']);
    const { client } = newClient({ url: proxy.url, requestTimeoutMs: 30_000 });
    const prefix = keyPrefix();
    client.addAmounts(`${prefix}1`, instanceId, new Date(), { samples: 1 });
    client.addAmounts(`${prefix}2`, instanceId, new Date(), { samples: 2 });
    const started = Date.now();
    // The batch in flight at the deadline has no answer: it is reported, whatever the server did with it.
    expect(await client.close(400)).toEqual({ undelivered: [`${prefix}1`, `${prefix}2`], spilled: [] });
    expect(Date.now() - started).toBeLessThan(1_500);
    await proxy.close();
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ lost: 2 });
    expect(await sumBy(client.registry, 'billing_client_requests_total', 'outcome')).toEqual({ aborted: 1 });
  });

  it('counts a batch as lost once maxRetries is spent, without waiting for close()', async () => {
    const lost: string[] = [];
    const { client, logger } = newClient({
      url: `http://127.0.0.1:${await freePort()}`, maxRetries: 2, flushIntervalMs: 10,
      onRejected: (event, status, reason) => lost.push(`${status} ${event.uniqueKey} ${reason}`),
    });
    const key = `${keyPrefix()}1`;
    client.addAmounts(key, instanceId, new Date(), { samples: 1 });
    const until = Date.now() + 5_000;
    while (!logger.lines.some((l) => l.msg.includes('gave up')) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ lost: 1 });
    expect(await sumBy(client.registry, 'billing_client_requests_total', 'outcome')).toEqual({ network_error: 3 });
    expect(lost).toEqual([expect.stringMatching(new RegExp(`^lost ${key} not delivered after 3 attempts: network error`))]);
    // Reported once: close() has nothing left to report for it.
    expect(await client.close(1_000)).toEqual({ undelivered: [], spilled: [] });
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ lost: 1 });
  });

  it('shares one registry between clients without registering the metrics twice', async () => {
    const first = newClient();
    const second = newClient({ registry: first.client.registry });
    const prefix = keyPrefix();
    first.client.addAmounts(`${prefix}1`, instanceId, new Date(), { samples: 1 });
    second.client.addAmounts(`${prefix}2`, instanceId, new Date(), { samples: 1 });
    await Promise.all([first.client.close(), second.client.close()]);
    expect(await sumBy(first.client.registry, 'billing_client_events_total', 'status')).toEqual({ accepted: 2 });
  });
});

describe('BillingClient argument checks', () => {
  const client = new BillingClient({ url: 'http://127.0.0.1:9', logger: captureLogger() });
  afterAll(() => client.close(0));
  const now = new Date();

  it.each([
    ['uniqueKey', () => client.addAmounts('', 'inst', now, { samples: 1 })],
    ['uniqueKey', () => client.addAmounts('   ', 'inst', now, { samples: 1 })],
    ['uniqueKey', () => client.addAmounts('k'.repeat(257), 'inst', now, { samples: 1 })],
    ['internalInstanceId', () => client.addAmounts('k', '', now, { samples: 1 })],
    ['timestamp', () => client.addAmounts('k', 'inst', new Date('not a date'), { samples: 1 })],
    ['amounts', () => client.addAmounts('k', 'inst', now, {})],
    ['amounts.samples', () => client.addAmounts('k', 'inst', now, { samples: 1.5 })],
    ['amounts.samples', () => client.addAmounts('k', 'inst', now, { samples: -1 })],
    ['amounts.samples', () => client.addAmounts('k', 'inst', now, { samples: Number.NaN })],
    ['metadata.region', () => client.addAmounts('k', 'inst', now, { samples: 1 }, { region: 3 as unknown as string })],
    ['uniqueKey', () => client.addAmounts('k\u0000', 'inst', now, { samples: 1 })],
    ['uniqueKey', () => client.addAmounts('k\ud800', 'inst', now, { samples: 1 })],
    ['internalInstanceId', () => client.addAmounts('k', 'inst\udc00', now, { samples: 1 })],
    ['metadata.region', () => client.addAmounts('k', 'inst', now, { samples: 1 }, { region: 'eu\u0000' })],
  ])('names %s', (argument, call) => {
    let thrown: unknown;
    try {
      call();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(BillingClientError);
    expect(thrown).toMatchObject({ code: 'INVALID_ARGUMENT', argument, message: expect.stringContaining(argument) });
  });

  it('buffers nothing for a rejected call', async () => {
    expect(await gauge(client.registry, 'billing_client_buffered_events')).toBe(0);
  });

  it('names a bad option', () => {
    expect(() => new BillingClient({ url: 'not a url' })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION', argument: 'url' }));
    expect(() => new BillingClient({ url: 'http://x', maxBatchEvents: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION', argument: 'maxBatchEvents' }));
  });
});
