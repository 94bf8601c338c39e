import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import type { Registry } from 'prom-client';
import { BillingClient, Samples, type BillingClientOptions, type WireEvent } from '../client/index.js';
import { freePort } from '../devstack/process.js';
import { startTestTally, type TestTally } from './support/stack.js';

// Full buffers, spill files and an ingester that comes and goes, against the real ingest API.
// What arrived is read from Postgres' key ledger (event_keys), where a key is claimed once.

let tally: TestTally;
let apiUrl: string;
let apiKey: string;
const run = randomBytes(3).toString('hex');
const instanceId = `inst-${run}`;
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

beforeAll(async () => {
  tally = await startTestTally();
  apiUrl = await tally.app.listen({ port: 0, host: '127.0.0.1' });
  apiKey = tally.auth.authorization.slice('Bearer '.length);
});
afterAll(async () => {
  await tally?.close();
});

const keyPrefix = () => `${run}-${randomBytes(3).toString('hex')}-`;
const keys = (prefix: string, ns: number[]) => ns.map((n) => `${prefix}${String(n).padStart(2, '0')}`);
const newClient = (options: Partial<BillingClientOptions>) =>
  new BillingClient({ url: apiUrl, apiKey, logger: quiet, retryBaseDelayMs: 10, retryMaxDelayMs: 100, ...options });
const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'tally-spill-'));
const spillFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl'));

async function storedKeys(prefix: string): Promise<string[]> {
  const { rows } = await tally.db.query<{ event_key: string }>(
    'SELECT event_key FROM event_keys WHERE event_key LIKE $1 ORDER BY event_key', [`${prefix}%`],
  );
  return rows.map((r) => r.event_key);
}

async function sumBy(registry: Registry, metric: string, label: string): Promise<Record<string, number>> {
  const sums: Record<string, number> = {};
  for (const v of (await registry.getSingleMetric(metric)!.get()).values) {
    const key = String(v.labels[label] ?? '');
    sums[key] = (sums[key] ?? 0) + v.value;
  }
  return sums;
}

function event(uniqueKey: string, n: number): WireEvent {
  return { uniqueKey, internalInstanceId: instanceId, timestamp: new Date().toISOString(), amounts: { [Samples]: n } };
}

/** A forwarding proxy that records the keys of every request it sees; it answers 503 while `down`. */
async function startRecordingProxy(port = 0) {
  const requests: string[][] = [];
  const state = { down: 0 };
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
    requests.push((JSON.parse(body.toString()) as { events: WireEvent[] }).events.map((e) => e.uniqueKey));
    if (state.down > 0) {
      state.down--;
      return res.writeHead(503, { 'retry-after': '0' }).end('{"code":"DOWN","message":"injected"}');
    }
    const upstream = await fetch(new URL(req.url ?? '/', apiUrl), {
      method: 'POST', body: raw,
      headers: { 'content-type': 'application/json', authorization: req.headers.authorization ?? '', 'content-encoding': req.headers['content-encoding'] ?? 'identity' },
    });
    res.writeHead(upstream.status, { 'content-type': 'application/json' }).end(await upstream.text());
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const { port: bound } = server.address() as import('node:net').AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}`, requests, state,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('a full buffer, under each overflow policy', () => {
  it('drop-oldest: keeps the newest, tells onRejected which events went, and counts them', async () => {
    const prefix = keyPrefix();
    const rejected: string[] = [];
    const client = newClient({
      overflow: 'drop-oldest', maxBufferedEvents: 3, flushIntervalMs: 60_000,
      onRejected: (e, status) => rejected.push(`${status} ${e.uniqueKey}`),
    });
    const statuses = keys(prefix, [1, 2, 3, 4, 5]).map((k, i) => client.addAmounts(k, instanceId, new Date(), { samples: i + 1 }));
    expect(statuses).toEqual(['buffered', 'buffered', 'buffered', 'dropped_oldest', 'dropped_oldest']);
    expect(rejected).toEqual(keys(prefix, [1, 2]).map((k) => `buffer_full ${k}`));
    expect(await client.close()).toEqual({ undelivered: [], spilled: [] });
    expect(await storedKeys(prefix)).toEqual(keys(prefix, [3, 4, 5]));
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ buffer_full: 2, accepted: 3 });
    expect(await sumBy(client.registry, 'billing_client_amounts_total', 'status')).toEqual({ buffer_full: 3, accepted: 12 });
  });

  it('spill: writes the overflow to a JSON lines file, replays it, and every event arrives exactly once', async () => {
    const prefix = keyPrefix();
    const dir = tempDir();
    const client = newClient({ overflow: 'spill', spillDir: dir, maxBufferedEvents: 5, maxBatchEvents: 5, flushIntervalMs: 60_000 });
    const all = keys(prefix, Array.from({ length: 12 }, (_, i) => i));
    // Held by the sender's flush wait: the first five fill memory, the rest spill.
    const statuses = all.map((k) => client.addAmounts(k, instanceId, new Date(), { samples: 1 }));
    expect(statuses.filter((s) => s === 'buffered')).toHaveLength(5);
    expect(statuses.filter((s) => s === 'spilled')).toHaveLength(7);
    expect(await client.close()).toEqual({ undelivered: [], spilled: [] });

    expect(await storedKeys(prefix)).toEqual(all);
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ accepted: 12 });
    expect(await sumBy(client.registry, 'billing_client_spill_events_total', 'action')).toEqual({ written: 7, replayed: 7 });
    expect(spillFiles(dir)).toEqual([]); // answered, so deleted
  });

  it('spill: what close() could not send stays on disk, is reported, and the next client sends it once', async () => {
    const prefix = keyPrefix();
    const dir = tempDir();
    const unreachable = `http://127.0.0.1:${await freePort()}`;
    const first = newClient({ url: unreachable, overflow: 'spill', spillDir: dir, maxBufferedEvents: 4, flushIntervalMs: 10 });
    const all = keys(prefix, Array.from({ length: 10 }, (_, i) => i));
    for (const k of all) first.addAmounts(k, instanceId, new Date(), { samples: 2 });
    const report = await first.close(300);
    expect([...report.undelivered].sort()).toEqual(all);
    expect([...report.spilled].sort()).toEqual(all);
    expect(spillFiles(dir).length).toBeGreaterThan(0);

    const second = newClient({ overflow: 'spill', spillDir: dir });
    expect(await second.close()).toEqual({ undelivered: [], spilled: [] });
    expect(await storedKeys(prefix)).toEqual(all);
    expect(spillFiles(dir)).toEqual([]);
  });

  it('spill: a spill directory that cannot be written answers buffer_full, counted, never a throw', async () => {
    const prefix = keyPrefix();
    const dir = tempDir();
    const client = newClient({ url: `http://127.0.0.1:${await freePort()}`, overflow: 'spill', spillDir: dir, maxBufferedEvents: 1, flushIntervalMs: 60_000 });
    fs.rmSync(dir, { recursive: true });
    fs.writeFileSync(dir, 'not a directory'); // the disk went away under the client
    expect(client.addAmounts(`${prefix}1`, instanceId, new Date(), { samples: 1 })).toBe('buffered');
    expect(client.addAmounts(`${prefix}2`, instanceId, new Date(), { samples: 1 })).toBe('buffer_full');
    // Nowhere to keep the buffered one either: reported as undelivered, not as spilled.
    expect(await client.close(0)).toEqual({ undelivered: [`${prefix}1`], spilled: [] });
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ buffer_full: 1, lost: 1 });
    fs.rmSync(dir);
  });

  it('spill: a crash mid-replay (file half answered, torn last line) loses nothing and counts nothing twice', async () => {
    const prefix = keyPrefix();
    const dir = tempDir();
    const events = keys(prefix, [0, 1, 2, 3, 4, 5]).map((k, i) => event(k, i + 1));
    // The server already has the first three: the crashed process had sent them before it died.
    const seeded = await fetch(`${apiUrl}/v1/events`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: tally.auth.authorization },
      body: JSON.stringify({ events: events.slice(0, 3) }),
    });
    expect(seeded.status).toBe(200);
    const lines = events.map((e) => JSON.stringify(e)).join('\n');
    fs.writeFileSync(path.join(dir, `spill-${String(Date.now()).padStart(15, '0')}-1-0.jsonl`), `${lines}\n{"uniqueKey":"${prefix}torn","inter`);

    const client = newClient({ overflow: 'spill', spillDir: dir });
    expect(await client.close()).toEqual({ undelivered: [], spilled: [] });
    expect(await storedKeys(prefix)).toEqual(events.map((e) => e.uniqueKey));
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ duplicate: 3, accepted: 3 });
    expect(spillFiles(dir)).toEqual([]);
  });
});

describe('an ingester that fails', () => {
  it('down, then up: new events keep being buffered, and everything arrives once when it is back', async () => {
    const prefix = keyPrefix();
    const port = await freePort();
    const client = newClient({ url: `http://127.0.0.1:${port}`, maxBufferedEvents: 100, maxBatchEvents: 10, flushIntervalMs: 10 });
    const all = keys(prefix, Array.from({ length: 30 }, (_, i) => i));
    for (const k of all.slice(0, 15)) expect(client.addAmounts(k, instanceId, new Date(), { samples: 1 })).toBe('buffered');
    await new Promise((r) => setTimeout(r, 300)); // the sender meets connection refusals meanwhile
    expect((await sumBy(client.registry, 'billing_client_requests_total', 'outcome')).network_error).toBeGreaterThan(0);
    for (const k of all.slice(15)) expect(client.addAmounts(k, instanceId, new Date(), { samples: 1 })).toBe('buffered');

    const proxy = await startRecordingProxy(port);
    expect(await client.close(10_000)).toEqual({ undelivered: [], spilled: [] });
    await proxy.close();
    expect(await storedKeys(prefix)).toEqual(all);
    expect(await sumBy(client.registry, 'billing_client_events_total', 'status')).toEqual({ accepted: 30 });
  });

  it('retries each batch, with the same keys, before the next batch goes', async () => {
    const prefix = keyPrefix();
    const proxy = await startRecordingProxy();
    proxy.state.down = 2;
    const client = newClient({ url: proxy.url, maxBatchEvents: 2, flushIntervalMs: 60_000 });
    const all = keys(prefix, [0, 1, 2, 3, 4]);
    for (const k of all) client.addAmounts(k, instanceId, new Date(), { samples: 1 });
    await client.close();
    await proxy.close();
    const [a, b, c] = [all.slice(0, 2), all.slice(2, 4), all.slice(4)];
    expect(proxy.requests).toEqual([a, a, a, b, c]);
    expect(await storedKeys(prefix)).toEqual(all);
  });
});
