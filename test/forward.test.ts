import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { decodeMulti, encode, ExtData } from '@msgpack/msgpack';
import { Client, Connection } from '@temporalio/client';
import { EventTime as FluentEventTime, FluentClient } from '@fluent-org/logger';
import pino from 'pino';
import { Registry } from 'prom-client';
import { eventRulesFromConfig } from '../api/event-rules.js';
import { startForwardServer, type ForwardServer, type ForwardServerOptions } from '../api/forward/server.js';
import type { IngestTimings } from '../api/ingest.js';
import { addDays, billingDayOf } from '../core/billing-day.js';
import { decodeOutboxEvents } from '../core/outbox-events.js';
import type { AcceptedEvent } from '../core/usage-event.js';
import { freePort } from '../devstack/process.js';
import { TemporalHealth } from '../api/temporal-health.js';
import { startTestTally, type TestTally } from './support/stack.js';

// Tally's Fluentd forward listener against the real stack, fed by the real senders: Weave's Go
// billing client path (fluent-logger-golang, JSON), the npm Fluentd client (msgpack, acks), and
// hand-built frames for every mode. Each test owns a random key prefix; event_keys tells the rest.

let tally: TestTally;
let forward: ForwardServer;
let deps: ForwardServerOptions['deps'];
const registry = new Registry();
/** Where each delivery's ingest call spent its time, as the API's histogram is told. */
const storeTimings: IngestTimings[] = [];
const logLines: Record<string, unknown>[] = [];
const logger = pino({ level: 'debug' }, new Writable({ write(line, _enc, done) { logLines.push(JSON.parse(String(line))); done(); } }));
const run = randomBytes(3).toString('hex');
const yesterday = addDays(billingDayOf(Date.now()), -1);
const instanceId = `inst-${run}`;

beforeAll(async () => {
  tally = await startTestTally();
  deps = { ...tally.ingestDeps, rules: eventRulesFromConfig(tally.config), onStored: (t) => storeTimings.push(t) };
  forward = await startForwardServer({ host: '127.0.0.1', port: 0, deps, logger, registry });
});
afterAll(async () => {
  await forward?.close();
  await tally?.close();
});

const prefix = () => `${run}-${randomBytes(3).toString('hex')}-`;

/** The events the outbox holds for keys starting with `keyPrefix`, decoded as the drainer reads them. */
async function outboxEvents(keyPrefix: string): Promise<AcceptedEvent[]> {
  const { rows } = await tally.db.query<{ batch_id: string; events: AcceptedEvent[] | null; events_gzip: Buffer | null }>(
    'SELECT batch_id, events, events_gzip FROM ingest_batches WHERE batch_id IN (SELECT batch_id FROM event_keys WHERE event_key LIKE $1)', [`${keyPrefix}%`],
  );
  return rows.flatMap(decodeOutboxEvents).filter((e) => e.key.startsWith(keyPrefix)).sort((a, b) => (a.key < b.key ? -1 : 1));
}

async function storedKeys(keyPrefix: string): Promise<string[]> {
  const { rows } = await tally.db.query<{ event_key: string }>('SELECT event_key FROM event_keys WHERE event_key LIKE $1 ORDER BY 1', [`${keyPrefix}%`]);
  return rows.map((r) => r.event_key);
}

async function count(status: string): Promise<number> {
  const metric = await registry.getSingleMetric('tally_forward_records_total')!.get();
  return metric.values.find((v) => v.labels.status === status)?.value ?? 0;
}

function record(key: string, amountType: string, amountValue: unknown, extra: Record<string, unknown> = {}) {
  return { unique_key: `${key}:${amountType}`, internal_instance_id: instanceId, amount_type: amountType, amount_value: amountValue, occurred_at: `${yesterday}T10:00:00.5Z`, metadata: { via: 'forward' }, ...extra };
}

/** Sends bytes (optionally in small pieces) and collects acks until `acks` arrived or the server closed. */
async function exchange(bytes: Buffer, opts: { acks: number; pieces?: number; port?: number; end?: boolean }): Promise<{ acks: unknown[]; closed: boolean }> {
  const socket = net.connect(opts.port ?? forward.port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  let received = Buffer.alloc(0);
  const result = new Promise<{ acks: unknown[]; closed: boolean }>((resolve) => {
    const decodeAcks = () => (received[0] === 0x7b ? received.toString().match(/\{[^}]*\}/g)!.map((s) => JSON.parse(s)) : [...decodeMulti(received)]);
    socket.on('data', (d) => {
      received = Buffer.concat([received, d]);
      if (decodeAcks().length >= opts.acks) { socket.end(); resolve({ acks: decodeAcks(), closed: false }); }
    });
    socket.on('close', () => resolve({ acks: received.length ? decodeAcks() : [], closed: true }));
    socket.on('error', () => undefined);
  });
  const size = Math.ceil(bytes.length / (opts.pieces ?? 1));
  for (let i = 0; i < bytes.length; i += size) {
    socket.write(bytes.subarray(i, i + size));
    await new Promise((r) => setTimeout(r, 2));
  }
  if (opts.end) socket.end();
  return result;
}

const msgpack = (value: unknown) => Buffer.from(encode(value));
function eventTime(seconds: number, nanos: number): ExtData {
  const data = Buffer.alloc(8);
  data.writeUInt32BE(seconds, 0);
  data.writeUInt32BE(nanos, 4);
  return new ExtData(0, data);
}

describe("Weave's Go billing client (fluent-logger-golang, MarshalAsJSON)", () => {
  const goDir = path.join(import.meta.dirname, 'go-client');
  const binary = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tally-go-client-')), 'go-client');
  const day = addDays(billingDayOf(Date.now()), -2);
  const key = prefix();
  const events = [
    { uniqueKey: `${key}1`, internalInstanceId: instanceId, occurredAt: `${day}T13:15:00.123456789+01:00`, amounts: { 'container-seconds': 1234, 'node-seconds': 60, 'weavenet-seconds': 0 }, metadata: { service: 'scope' } },
    { uniqueKey: `${key}2`, internalInstanceId: instanceId, occurredAt: `${day}T23:59:59.999999999Z`, amounts: { samples: 1_000_000_007 }, metadata: null },
  ];
  const post = (port: number, posted = events, flags: string[] = []) => {
    const child = execFile(binary, ['-billing.ingester', `127.0.0.1:${port}`, ...flags], { timeout: 30_000 });
    child.stdin!.end(JSON.stringify(posted));
    return new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`go-client exited ${code}`))));
    });
  };

  beforeAll(async () => {
    const env = { ...process.env, PATH: `${process.env.PATH}:/usr/local/go/bin`, GOFLAGS: '-mod=readonly' };
    await promisify(execFile)('go', ['build', '-buildvcs=false', '-o', binary, '.'], { cwd: goDir, env, timeout: 180_000 });
  }, 200_000);

  it('writes back-to-back JSON arrays ["billing", <unix seconds>, <record>, {}], one per non-zero amount', async () => {
    const capture = net.createServer();
    const bytes: Buffer[] = [];
    capture.on('connection', (s) => s.on('data', (d) => bytes.push(d)));
    await new Promise<void>((r) => capture.listen(0, '127.0.0.1', r));
    expect(await post((capture.address() as net.AddressInfo).port)).toContain('posted 3 records');
    await new Promise<void>((r) => capture.close(() => r()));
    const wire = Buffer.concat(bytes).toString();
    expect(wire).toMatch(/^(\["billing",\d+,\{.*?\},\{\}\]){3}$/);
    expect(wire).toContain(`"metadata":null,"occurred_at":"${day}T23:59:59.999999999Z","unique_key":"${key}2:samples"}`);
    expect(wire).toContain(`{"amount_type":"node-seconds","amount_value":60,"internal_instance_id":"${instanceId}","metadata":{"service":"scope"},"occurred_at":"${day}T13:15:00.123456789+01:00","unique_key":"${key}1:node-seconds"}`);
  });

  it('stores every record under its own key, through to BigQuery; posting again adds nothing', async () => {
    await post(forward.port);
    const expected = [`${key}1:container-seconds`, `${key}1:node-seconds`, `${key}2:samples`];
    await vi.waitFor(async () => expect(await storedKeys(key)).toEqual(expected), { timeout: 15_000, interval: 100 });

    const { rows } = await tally.db.query<{ batch_id: string }>('SELECT DISTINCT batch_id FROM event_keys WHERE event_key LIKE $1', [`${key}%`]);
    for (const { batch_id } of rows) await tally.batchWritten(batch_id);
    expect(await tally.rawEvents.countRows(day)).toEqual({ rows: 3, distinctInsertIds: 3 });
    const stored = await outboxEvents(key);
    expect(stored.map((e) => [e.occurredAt, e.amounts, e.metadata])).toEqual([
      [`${day}T12:15:00.123Z`, { 'container-seconds': 1234 }, { service: 'scope' }],
      [`${day}T12:15:00.123Z`, { 'node-seconds': 60 }, { service: 'scope' }],
      [`${day}T23:59:59.999Z`, { samples: 1_000_000_007 }, {}],
    ]);

    expect(storeTimings.some((t) => t.path === 'one-statement' && t.storeMs > 0)).toBe(true);
    const duplicates = await count('duplicate');
    storeTimings.length = 0;
    await post(forward.port);
    await vi.waitFor(async () => expect(await count('duplicate')).toBe(duplicates + 3), { timeout: 15_000, interval: 100 });
    expect(await storedKeys(key)).toEqual(expected);
    expect(storeTimings.map((t) => t.path)).toContain('key-by-key');
    const again = await tally.db.query('SELECT count(DISTINCT batch_id)::int AS n FROM event_keys WHERE event_key LIKE $1', [`${key}%`]);
    expect(again.rows[0].n).toBe(rows.length);
  });

  it('gets JSON acks when it asks for them (RequestAck), and only once the records are stored', async () => {
    const acked = prefix();
    const posted = [{ ...events[0]!, uniqueKey: `${acked}1`, occurredAt: `${yesterday}T10:00:00Z` }];
    expect(await post(forward.port, posted, ['-request-ack'])).toContain('posted 2 records');
    expect(await storedKeys(acked)).toEqual([`${acked}1:container-seconds`, `${acked}1:node-seconds`]);
  });
});

describe('the npm Fluentd client (@fluent-org/logger, msgpack, acks)', () => {
  for (const eventMode of ['Message', 'CompressedPackedForward'] as const) {
    it(`${eventMode}: emit resolves on the ack, and by then the records are stored`, async () => {
      const key = prefix();
      const client = new FluentClient('billing', { eventMode, ack: { ackTimeout: 20_000 }, milliseconds: true, socket: { host: '127.0.0.1', port: forward.port } });
      await Promise.all([
        client.emit(record(`${key}a`, 'container-seconds', 10)),
        client.emit(record(`${key}b`, 'samples', 20), new FluentEventTime(Math.floor(Date.now() / 1000), 5)),
      ]);
      expect(await storedKeys(key)).toEqual([`${key}a:container-seconds`, `${key}b:samples`]);
      await client.disconnect();
    });
  }
});

describe('hand-built msgpack frames in every mode', () => {
  it('Message, Forward, PackedForward (bin and str) and CompressedPackedForward, with EventTime: acked in order, rows stored', async () => {
    const key = prefix();
    const t = Math.floor(Date.parse(`${yesterday}T08:30:00Z`) / 1000);
    const entry = (n: number, time: unknown = t) => msgpack([time, record(`${key}${n}`, 'node-seconds', n)]);
    // Without occurred_at the entry's EventTime is the event's time, to the millisecond.
    const { occurred_at: _, ...timeless } = record(`${key}0`, 'node-seconds', 7);
    const strPacked = Buffer.concat([entry(5), entry(6)]);
    const frames = [
      msgpack(['billing', eventTime(t, 250_999_999), timeless, { chunk: 'c-message' }]),
      msgpack(['billing', [[eventTime(t, 0), record(`${key}1`, 'node-seconds', 1)], [t, record(`${key}2`, 'node-seconds', 2)]], { chunk: 'c-forward', size: 2 }]),
      msgpack(['billing', Buffer.concat([entry(3), entry(4, eventTime(t, 1))]), { chunk: 'c-packed', size: 2 }]),
      // Older senders put PackedForward entries in a msgpack str (0xdb: str32), raw bytes inside.
      Buffer.concat([Buffer.from([0x93]), msgpack('billing'), str32Header(strPacked.length), strPacked, msgpack({ chunk: 'c-str' })]),
      // The spec allows several gzip members back to back.
      msgpack(['billing', Buffer.concat([gzipSync(entry(7)), gzipSync(entry(8, eventTime(t, 9)))]), { chunk: 'c-gzip', compressed: 'gzip', size: 2 }]),
      Buffer.from(JSON.stringify(['billing', t, record(`${key}9`, 'node-seconds', 9), { chunk: 'c-json' }])),
    ];
    const msgpackAcks = await exchange(Buffer.concat(frames.slice(0, 5)), { acks: 5, pieces: 37 });
    expect(msgpackAcks).toEqual({ closed: false, acks: ['c-message', 'c-forward', 'c-packed', 'c-str', 'c-gzip'].map((ack) => ({ ack })) });
    const jsonAck = await exchange(frames[5]!, { acks: 1 });
    expect(jsonAck.acks).toEqual([{ ack: 'c-json' }]); // a JSON sender reads its ack as JSON
    expect(await storedKeys(key)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => `${key}${n}:node-seconds`));
    const timed = await outboxEvents(`${key}0:node-seconds`);
    expect(timed.map((e) => e.occurredAt)).toEqual([`${yesterday}T08:30:00.250Z`]);
  });
});

describe('batching', () => {
  it('ingests messages that arrive together as one batch, and splits a message of more than 1000 records', async () => {
    const key = prefix();
    const single = Array.from({ length: 2000 }, (_, n) => JSON.stringify(['billing', t0(), record(`${key}s${n}`, 'samples', n), n === 1999 ? { chunk: 'last' } : {}]));
    expect((await exchange(Buffer.from(single.join('')), { acks: 1 })).acks).toEqual([{ ack: 'last' }]);
    const big = msgpack(['billing', Array.from({ length: 1500 }, (_, n) => [t0(), record(`${key}b${n}`, 'samples', n)]), { chunk: 'big' }]);
    expect((await exchange(big, { acks: 1 })).acks).toEqual([{ ack: 'big' }]);
    const batches = async (kind: string) => (await tally.db.query<{ batch_id: string; n: number }>(
      'SELECT batch_id, count(*)::int AS n FROM event_keys WHERE event_key LIKE $1 GROUP BY batch_id ORDER BY n DESC', [`${key}${kind}%`])).rows.map((r) => r.n);
    const small = await batches('s');
    expect(small.reduce((a, b) => a + b, 0)).toBe(2000);
    expect(small.length).toBeLessThan(50); // one per TCP read, not one per message
    expect(Math.max(...small)).toBeLessThanOrEqual(1000);
    expect(await batches('b')).toEqual([1000, 500]);
  });
});

describe('bad input and outages', () => {
  it('closes a connection that sends garbage, counts it, and keeps serving the others', async () => {
    const key = prefix();
    const malformed = await count('malformed');
    const other = exchange(msgpack(['billing', t0(), record(`${key}ok`, 'samples', 1), { chunk: 'other' }]), { acks: 1, pieces: 4 });
    const garbage = await exchange(Buffer.from('GET / HTTP/1.1\r\nHost: tally\r\n\r\n'), { acks: 1 });
    expect(garbage).toEqual({ acks: [], closed: true });
    // A good message before the garbage on the same read is still stored and acknowledged.
    const mixed = await exchange(Buffer.concat([msgpack(['billing', t0(), record(`${key}first`, 'samples', 1), { chunk: 'first' }]), Buffer.from([0x92, 0xc1, 0x00])]), { acks: 2 });
    expect(mixed).toEqual({ acks: [{ ack: 'first' }], closed: true });
    // The sender stops half-way through a message and closes its side.
    const truncated = await exchange(msgpack(['billing', t0(), record(`${key}cut`, 'samples', 1)]).subarray(0, 20), { acks: 1, end: true });
    expect(truncated).toEqual({ acks: [], closed: true });
    // JSON (the Go client's form) that is not UTF-8: the key's 0xff would otherwise be read as U+FFFD.
    const notUtf8 = await exchange(Buffer.concat([Buffer.from(`["billing",${t0()},{"unique_key":"${key}`), Buffer.from([0xff]), Buffer.from('"},{}]')]), { acks: 1 });
    expect(notUtf8).toEqual({ acks: [], closed: true });
    expect((await other).acks).toEqual([{ ack: 'other' }]);
    expect(await count('malformed')).toBe(malformed + 4);
    expect(await storedKeys(key)).toEqual([`${key}first:samples`, `${key}ok:samples`]);
    const reasons = logLines.filter((l) => l.msg === 'malformed forward input; closing the connection').map((l) => l.reason);
    expect(reasons).toEqual(expect.arrayContaining([
      'byte 0x47 cannot start a forward message (expected a msgpack array or a JSON array)',
      'byte 0xc1 is not valid msgpack',
      'connection closed in the middle of a message',
      'a JSON message must be UTF-8',
    ]));
  });

  it('rejects records the contract refuses, naming the field, and acks the rest', async () => {
    const key = prefix();
    const invalid = await count('invalid');
    const { amount_type: _, ...noType } = record(`${key}1`, 'samples', 1);
    const entries = [[t0(), noType], [t0(), record(`${key}2`, 'container-seconds', -5)], [t0(), record(`${key}3`, 'bogus-seconds', 5)], [t0(), record(`${key}4`, 'samples', 4)]];
    const answer = await exchange(Buffer.concat([msgpack(['billing', entries, { chunk: 'mixed' }]), msgpack(['billing', t0(), record(`${key}5`, 'samples', 5), { chunk: 'after' }])]), { acks: 2 });
    expect(answer).toEqual({ acks: [{ ack: 'mixed' }, { ack: 'after' }], closed: false });
    expect(await storedKeys(key)).toEqual([`${key}4:samples`, `${key}5:samples`]);
    expect(await count('invalid')).toBe(invalid + 3);
    const rejected = logLines.filter((l) => l.msg === 'forward record rejected' && String(l.uniqueKey ?? '').startsWith(key)).map((l) => [l.field, l.reason]);
    expect(rejected).toEqual([
      ['amount_type', 'required'],
      ['amount_value', 'must be a non-negative integer of at most 9007199254740991'],
      ['amount_type', expect.stringContaining('unknown amount type')],
    ]);
  });

  it('refuses a msgpack str that is not UTF-8, naming its field, where it would have been read as another string', async () => {
    const key = prefix();
    const [invalid, duplicate] = [await count('invalid'), await count('duplicate')];
    // Each placeholder (2 bytes of UTF-8) is swapped for 2 bytes that are not UTF-8 once encoded.
    const swap = (frame: Buffer, placeholder: string, bytes: number[]) => {
      const at = frame.indexOf(Buffer.from(placeholder));
      expect(at).toBeGreaterThan(0);
      Buffer.from(bytes).copy(frame, at);
      return frame;
    };
    const first = msgpack(['billing', t0(), record(`${key}kA`, 'samples', 1), { chunk: 'first' }]);
    let second: Buffer = msgpack(['billing', [
      // An overlong "A" (C1 81): read leniently, the key would be the first record's, a duplicate.
      [t0(), record(`${key}k§`, 'samples', 1)],
      // A long value (the platform's decoder): read leniently, FF FE would be two U+FFFD.
      [t0(), record(`${key}long`, 'samples', 1, { metadata: { note: `${'x'.repeat(80)}¶` } })],
      // A metadata name (a map key).
      [t0(), record(`${key}name`, 'samples', 1, { metadata: { 'm¤': 'v' } })],
      [t0(), record(`${key}ok`, 'samples', 1)],
    ], { chunk: 'second' }]);
    second = swap(swap(swap(second, '§', [0xc1, 0x81]), '¶', [0xff, 0xfe]), '¤', [0xc0, 0xae]);
    expect(await exchange(Buffer.concat([first, second]), { acks: 2 })).toEqual({ acks: [{ ack: 'first' }, { ack: 'second' }], closed: false });
    expect(await storedKeys(key)).toEqual([`${key}kA:samples`, `${key}ok:samples`]);
    expect(await count('invalid')).toBe(invalid + 3);
    expect(await count('duplicate')).toBe(duplicate);
    const rejected = logLines.filter((l) => l.msg === 'forward record rejected' && String(l.uniqueKey ?? '').startsWith(key)).map((l) => [l.field, l.reason]);
    const notUtf8 = expect.stringContaining('bytes that are not UTF-8');
    expect(rejected).toEqual([['unique_key', notUtf8], ['metadata.note', notUtf8], [expect.stringMatching(/^metadata\.m/), notUtf8]]);
  });

  it('holds the ack while Temporal is down and closes without it after the retry budget; the resend is stored', async () => {
    const key = prefix();
    const lost = await count('lost');
    const deadTemporal = new Client({ connection: Connection.lazy({ address: `127.0.0.1:${await freePort()}` }) });
    const down = await startForwardServer({ host: '127.0.0.1', port: 0, deps: { ...deps, temporalHealth: new TemporalHealth(deadTemporal, 300) }, logger, registry, retryBudgetMs: 1500 });
    const frame = msgpack(['billing', t0(), record(`${key}1`, 'samples', 1), { chunk: 'held' }]);
    const started = Date.now();
    expect(await exchange(frame, { acks: 1, port: down.port })).toEqual({ acks: [], closed: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    expect(await storedKeys(key)).toEqual([]);
    expect(await count('lost')).toBe(lost + 1);
    expect(logLines.some((l) => String(l.msg).startsWith('FORWARD RECORDS LOST: 1 records'))).toBe(true);
    await down.close();
    expect(await exchange(frame, { acks: 1 })).toEqual({ acks: [{ ack: 'held' }], closed: false });
    expect(await storedKeys(key)).toEqual([`${key}1:samples`]);
  });

  it('close() stops accepting and closes idle connections', async () => {
    const server = await startForwardServer({ host: '127.0.0.1', port: 0, deps, logger, registry });
    const idle = net.connect(server.port, '127.0.0.1');
    await new Promise((r) => idle.once('connect', r));
    const idleClosed = new Promise((r) => idle.once('close', r));
    await server.close();
    await idleClosed;
    const refused = net.connect(server.port, '127.0.0.1');
    await expect(new Promise((resolve, reject) => { refused.once('connect', resolve); refused.once('error', reject); })).rejects.toThrow(/ECONNREFUSED/);
  });
});

function str32Header(length: number): Buffer {
  const header = Buffer.from([0xdb, 0, 0, 0, 0]);
  header.writeUInt32BE(length, 1);
  return header;
}

function t0(): number {
  return Math.floor(Date.parse(`${yesterday}T09:00:00Z`) / 1000);
}
