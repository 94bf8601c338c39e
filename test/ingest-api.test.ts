import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { billingDayOf } from '../core/billing-day.js';
import pino from 'pino';
import { buildApp } from '../api/app.js';
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
      headers: { ...tally.auth, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      payload: gzipSync(JSON.stringify({ events: [event(1), event(2)] })),
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().results.map((r: { status: string }) => r.status)).toEqual(['accepted', 'accepted']);
  });

  it('are measured decompressed against the body limit', async () => {
    const padding = 'x'.repeat(200 * 1024); // compresses to a few hundred bytes
    const res = await tally.app.inject({
      method: 'POST', url: '/v1/events',
      headers: { ...tally.auth, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      payload: gzipSync(JSON.stringify({ events: [{ ...event(3), metadata: { padding } }] })),
    });
    expect(res.statusCode).toBe(413);
  });

  it('other encodings get 415 naming the encoding', async () => {
    const res = await tally.app.inject({
      method: 'POST', url: '/v1/events',
      headers: { ...tally.auth, 'content-type': 'application/json', 'content-encoding': 'br' },
      payload: '{}',
    });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toMatchObject({ code: 'UNSUPPORTED_ENCODING', message: expect.stringContaining('br') });
  });
});

describe('batch status', () => {
  it('follows a batch from accepted to written, with the link to the workflow that drains it', async () => {
    const res = await tally.app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events: [event(10), event(11), event(12)] } });
    const { batchId, workflowId } = res.json();
    const first = await tally.app.inject({ method: 'GET', url: `/v1/batches/${batchId}`, headers: tally.auth });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ batchId, eventCount: 3, workflowId, temporalUrl: expect.stringContaining(workflowId) });
    expect(['accepted', 'written']).toContain(first.json().status);
    await tally.batchWritten(batchId);
    const later = await tally.app.inject({ method: 'GET', url: `/v1/batches/${batchId}`, headers: tally.auth });
    expect(later.json()).toMatchObject({ status: 'written', writtenAt: expect.any(String) });
  });

  it('answers 404 for an unknown batch and 400 for a malformed id', async () => {
    expect((await tally.app.inject({ method: 'GET', url: `/v1/batches/${randomUUID()}`, headers: tally.auth })).statusCode).toBe(404);
    const bad = await tally.app.inject({ method: 'GET', url: '/v1/batches/not-a-uuid', headers: tally.auth });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'INVALID_REQUEST', field: 'batchId' });
  });
});

describe('producer API keys', () => {
  const post = (headers: Record<string, string>) =>
    tally.app.inject({ method: 'POST', url: '/v1/events', headers, payload: { events: [event(20)] } });

  it('refuses a request without a key, with a malformed or unknown key, and says which', async () => {
    expect((await post({})).json()).toMatchObject({ code: 'API_KEY_MISSING' });
    expect((await post({})).statusCode).toBe(401);
    expect((await post({ authorization: 'Bearer hunter2' })).json()).toMatchObject({ code: 'API_KEY_MALFORMED' });
    const forged = tally.auth.authorization.replace(/.{4}$/, 'AAAA');
    expect((await post({ authorization: forged })).json()).toMatchObject({ code: 'API_KEY_UNKNOWN' });
  });

  it('issues a key once, lists it without its secret, and refuses it once revoked', async () => {
    const issued = await tally.app.inject({ method: 'POST', url: '/admin/api-keys', headers: tally.adminAuth, payload: { name: 'scope service', scopes: ['ingest'] } });
    expect(issued.statusCode).toBe(201);
    const { id, key } = issued.json();
    expect(key).toMatch(/^tally_key_[0-9a-f]{12}_/);
    expect((await post({ authorization: `Bearer ${key}` })).statusCode).toBe(200);
    const listed = await tally.app.inject({ method: 'GET', url: '/admin/api-keys', headers: tally.adminAuth });
    expect(listed.json().keys).toContainEqual({ id, name: 'scope service', scopes: ['ingest'], createdAt: expect.any(String), revokedAt: null });
    expect(listed.body).not.toContain(key.slice(-43));
    expect((await tally.app.inject({ method: 'DELETE', url: `/admin/api-keys/${id}`, headers: tally.adminAuth })).statusCode).toBe(204);
    const refused = await post({ authorization: `Bearer ${key}` });
    expect(refused.statusCode).toBe(401);
    expect(refused.json()).toMatchObject({ code: 'API_KEY_REVOKED' });
    expect((await tally.app.inject({ method: 'DELETE', url: '/admin/api-keys/key_000000000000', headers: tally.adminAuth })).statusCode).toBe(404);
  });

  it('refuses a key without the ingest scope with 403', async () => {
    const { id, key } = await tally.app.apiKeys.issue('reader', ['ingest']);
    await tally.db.query("UPDATE api_keys SET scopes = '{usage:read}' WHERE id = $1", [id]);
    const res = await post({ authorization: `Bearer ${key}` });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'API_KEY_SCOPE', message: expect.stringContaining('may not ingest') });
  });
});

describe("where an ingest request's time goes", () => {
  it('is logged for a slow request, step by step, and the time in Postgres is a histogram by path', async () => {
    // An app of its own that counts every request as slow (1 ms), its log captured.
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const app = await buildApp({ config: { ...tally.config, INGEST_SLOW_REQUEST_MS: 1 }, db: tally.db, temporal: tally.temporal, zuora: tally.zuora }, logger);
    try {
      const batch = { events: [event(40), event(41)] };
      const post = () => app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: batch });
      expect((await post()).json().results.map((r: { status: string }) => r.status)).toEqual(['accepted', 'accepted']);
      expect((await post()).json().results.map((r: { status: string }) => r.status)).toEqual(['duplicate', 'duplicate']);

      const slow = lines.filter((l) => String(l.msg).startsWith('slow ingest request'));
      expect(slow.map((l) => l.path)).toEqual(['one-statement', 'key-by-key']);
      for (const l of slow) {
        expect(l).toMatchObject({ level: 40, events: 2 });
        for (const step of ['prepareMs', 'temporalMs', 'connectionMs', 'storeMs']) expect(l[step]).toBeGreaterThanOrEqual(0);
        expect(l.storeMs).toBeGreaterThan(0);
        expect(l.elapsedMs as number).toBeGreaterThanOrEqual(l.storeMs as number);
      }

      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/^tally_ingest_store_duration_seconds_count\{path="one-statement"\} 1$/m);
      expect(metrics).toMatch(/^tally_ingest_store_duration_seconds_count\{path="key-by-key"\} 1$/m);
    } finally {
      await app.close();
    }
  });

  it('is not logged under the threshold', async () => {
    const lines: string[] = [];
    const app = await buildApp({ config: { ...tally.config, INGEST_SLOW_REQUEST_MS: 60_000 }, db: tally.db, temporal: tally.temporal, zuora: tally.zuora },
      pino({ level: 'warn' }, { write: (line: string) => lines.push(line) }));
    try {
      const res = await app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events: [event(42)] } });
      expect(res.statusCode).toBe(200);
      expect(lines.filter((l) => l.includes('slow ingest request'))).toEqual([]);
    } finally {
      await app.close();
    }
  });
});

describe('the amounts counter', () => {
  it('sums the amounts of accepted events only, by amount type, in either way of storing a batch', async () => {
    const app = await buildApp({ config: tally.config, db: tally.db, temporal: tally.temporal, zuora: tally.zuora }, pino({ level: 'silent' }));
    try {
      const post = (events: unknown[]) => app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events } });
      const both = (n: number) => ({ ...event(n), amounts: { 'node-seconds': n, 'container-seconds': 10 * n } });
      expect((await post([both(50), event(51)])).json().results.map((r: { status: string }) => r.status)).toEqual(['accepted', 'accepted']);
      // Key by key: a duplicate, a conflict, an invalid event and a repeat within the request count nothing.
      const mixed = await post([both(52), both(50), { ...event(51), amounts: { 'node-seconds': 7 } }, { ...event(53), amounts: {} }, both(52)]);
      expect(mixed.json().results.map((r: { status: string }) => r.status)).toEqual(['accepted', 'duplicate', 'conflict', 'invalid', 'duplicate']);
      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/^tally_ingest_amount_total\{amount_type="node-seconds"\} 153$/m);
      expect(metrics).toMatch(/^tally_ingest_amount_total\{amount_type="container-seconds"\} 1020$/m);
    } finally {
      await app.close();
    }
  });
});

describe('strings Postgres or BigQuery could not keep as sent', () => {
  it('are invalid events, named by field, and the other events of the request are accepted', async () => {
    const res = await tally.app.inject({
      method: 'POST', url: '/v1/events', headers: { ...tally.auth, 'content-type': 'application/json' },
      payload: JSON.stringify({ events: [event(60), { ...event(61), uniqueKey: `${run}-nul\u0000` }, event(62)] }),
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().results.map((r: { status: string; field?: string }) => [r.status, r.field])).toEqual([
      ['accepted', undefined], ['invalid', 'uniqueKey'], ['accepted', undefined],
    ]);
  });

  it('a metadata or amount name holding a line break is judged like any other: its bad value is invalid, the rest accepted', async () => {
    // The schema's compiled check once skipped such names, and the number below then threw: a 500 for the whole request.
    const res = await tally.app.inject({
      method: 'POST', url: '/v1/events', headers: { ...tally.auth, 'content-type': 'application/json' },
      payload: JSON.stringify({ events: [{ ...event(63), metadata: { 'line\nbreak': 5 } }, event(64), { ...event(65), amounts: { 'a\nb': 'x' } }] }),
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().results.map((r: { status: string; field?: string; reason?: string }) => [r.status, r.field, r.reason])).toEqual([
      ['invalid', 'metadata.line\nbreak', 'must be a string'], ['accepted', undefined, undefined],
      ['invalid', 'amounts.a\nb', expect.stringContaining('non-negative integer')],
    ]);
  });

  it('a lone surrogate is invalid (in UTF-8 two keys differing only there would become one)', async () => {
    // JSON's escapes can spell a lone UTF-16 surrogate; in UTF-8 both keys would become "…\ufffd".
    const post = (key: string, n: number) => tally.app.inject({
      method: 'POST', url: '/v1/events', headers: { ...tally.auth, 'content-type': 'application/json' },
      payload: `{"events":[${JSON.stringify({ ...event(n), uniqueKey: key })}]}`,
    });
    for (const [key, n] of [[`${run}-lone-\ud800`, 63], [`${run}-lone-\udc01`, 64]] as const) {
      const res = await post(key, n);
      expect(res.statusCode).toBe(400);
      expect(res.json().results[0]).toMatchObject({ status: 'invalid', field: 'uniqueKey', reason: expect.stringContaining('lone UTF-16 surrogate') });
    }
    const metadata = await tally.app.inject({
      method: 'POST', url: '/v1/events', headers: tally.auth,
      payload: { events: [{ ...event(65), metadata: { host: 'a\u0000b' } }, { ...event(66), internalInstanceId: 'i\u0000' }] },
    });
    expect(metadata.json().results.map((r: { field?: string }) => r.field)).toEqual(['metadata.host', 'internalInstanceId']);
  });

  it('a body that is not UTF-8 is refused whole, and UTF-8 beyond ASCII is kept as sent', async () => {
    const post = (payload: Buffer) => tally.app.inject({ method: 'POST', url: '/v1/events', headers: { ...tally.auth, 'content-type': 'application/json' }, payload });
    // 0xff is never UTF-8: read as text, it would become U+FFFD, as any other invalid byte would.
    const [before, after] = JSON.stringify({ events: [{ ...event(67), uniqueKey: `${run}-bytes-@` }] }).split('@');
    const refused = await post(Buffer.concat([Buffer.from(before!), Buffer.from([0xff]), Buffer.from(after!)]));
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toEqual({ code: 'INVALID_ENCODING', message: expect.stringContaining('not valid UTF-8') });
    const kept = await post(Buffer.from(JSON.stringify({ events: [{ ...event(68), uniqueKey: `${run}-ключ-😀` }] })));
    expect(kept.json().results[0]).toMatchObject({ status: 'accepted', uniqueKey: `${run}-ключ-😀` });
    // Kept as sent: the ledger holds the key's own bytes.
    const stored = await tally.db.query<{ bytes: string }>("SELECT encode(convert_to(event_key, 'UTF8'), 'hex') AS bytes FROM event_keys WHERE event_key LIKE $1", [`${run}-%😀`]);
    expect(stored.rows.map((r) => r.bytes)).toEqual([Buffer.from(`${run}-ключ-😀`).toString('hex')]);
  });
});
