import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BigQuery } from '@google-cloud/bigquery';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { insertRefusal, RawEventStore } from '../activities/raw-events.js';
import type { BillingDay } from '../core/billing-day.js';
import type { AcceptedEvent } from '../core/usage-event.js';
import { startBigQueryEmulator } from '../devstack/bigquery-emulator.js';
import { freePort } from '../devstack/process.js';
import { projectRoot, venvPython } from '../devstack/tools.js';

// The local emulator never answers a partial failure (it takes rows missing a required field, and
// fails the whole request on a wrong type), so the answer BigQuery documents for one is read here.
describe('insertRefusal', () => {
  const rows = [{ insertId: 'a:container-seconds' }, { insertId: 'b:container-seconds' }];

  it('is null when every row was taken', () => {
    expect(insertRefusal({ kind: 'bigquery#tableDataInsertAllResponse' }, rows)).toBeNull();
    expect(insertRefusal({ kind: 'bigquery#tableDataInsertAllResponse', insertErrors: [] }, rows)).toBeNull();
  });

  it('names the first refused row and the reason when BigQuery answers 200 with insertErrors', () => {
    const err = insertRefusal({ insertErrors: [{ index: 1, errors: [{ reason: 'invalid', message: 'no such field: bogus.' }] }] }, rows);
    expect(err?.message).toBe('BigQuery refused 1 of 2 rows; row b:container-seconds: invalid: no such field: bogus.');
  });

  it('still refuses when the errors carry no reason', () => {
    expect(insertRefusal({ insertErrors: [{ index: 0 }] }, rows)?.message).toBe('BigQuery refused 1 of 2 rows; row a:container-seconds: no reason given');
  });
});

// The drainer's own insert path (RawEventStore.insertBatches) must read the answer: BigQuery answers
// 200 with insertErrors for a partial failure. The emulator cannot give one, so a relay in front of
// it passes every request through and adds BigQuery's documented insertErrors to the insertAll
// answer, sent with the content type BigQuery uses.
describe('a streaming insert that BigQuery partly refuses', () => {
  let relay: http.Server;
  let relayUrl = '';
  beforeAll(async () => {
    const emulator = inject('stackEnv').BIGQUERY_API_ENDPOINT!;
    relay = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const body = Buffer.concat(chunks);
        const answer = await fetch(`${emulator}${req.url}`, {
          method: req.method, headers: { 'content-type': req.headers['content-type'] ?? 'application/json' }, body: body.length > 0 ? body : undefined,
        });
        let text = await answer.text();
        if (new URL(req.url!, relayUrl).pathname.endsWith('/insertAll') && answer.ok) {
          text = JSON.stringify({ ...JSON.parse(text), insertErrors: [{ index: 1, errors: [{ reason: 'invalid', message: 'refused by the test relay' }] }] });
        }
        res.writeHead(answer.status, { 'content-type': 'application/json; charset=UTF-8' }).end(text);
      });
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    relayUrl = `http://127.0.0.1:${(relay.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => relay.close(() => r())));

  it('fails the insert, naming the refused row, though the answer was a 200', async () => {
    const store = new RawEventStore(new BigQuery({ projectId: inject('stackEnv').BIGQUERY_PROJECT ?? 'tally-local', apiEndpoint: relayUrl }), `refusal_${randomBytes(3).toString('hex')}`, 'events');
    await store.ensureTable();
    const day = '2026-11-19' as BillingDay;
    const event = (key: string): AcceptedEvent => ({ key, instanceId: 'org-refusal', occurredAt: `${day}T10:00:00.000Z`, day, amounts: { 'container-seconds': 5 }, metadata: {} });
    await expect(store.insertBatches([{ events: [event('refusal-1'), event('refusal-2')], batchId: 'batch-refusal', receivedAt: `${day}T10:00:01.000Z` }]))
      .rejects.toThrow('BigQuery refused 1 of 2 rows; row refusal-2:container-seconds: invalid: refused by the test relay');
  });
});

// The local stack starts the emulator through devstack/bqemulator-start.py, which skips the copy of
// the whole table that bqemulator otherwise makes after every write (for time travel, off here).
describe('the local BigQuery emulator', () => {
  it('keeps no copy of the table per streaming insert, and keeps the rows', { timeout: 120_000 }, async () => {
    fs.mkdirSync(path.join(projectRoot, '.data'), { recursive: true });
    const dir = fs.mkdtempSync(path.join(projectRoot, '.data', 'emulator-copies-'));
    const dataDir = path.join(dir, 'data');
    fs.mkdirSync(dataDir);
    try {
      const emulator = await startBigQueryEmulator({ port: await freePort(), grpcPort: await freePort(), projectId: 'copies', dataDir, logDir: dir });
      try {
        const store = new RawEventStore(new BigQuery({ projectId: 'copies', apiEndpoint: emulator.apiEndpoint }), 'raw', 'events');
        await store.ensureTable();
        const day = '2026-11-20' as BillingDay;
        const event = (key: string): AcceptedEvent => ({ key, instanceId: 'org-copies', occurredAt: `${day}T10:00:00Z`, day, amounts: { 'container-seconds': 5 }, metadata: {} });
        await store.insert([event('copies-1'), event('copies-2')], 'batch-1', `${day}T10:00:01Z`);
        await store.insert([event('copies-3')], 'batch-2', `${day}T10:00:02Z`);
        expect(await store.countRows(day)).toEqual({ rows: 3, distinctInsertIds: 3 });
      } finally {
        await emulator.process.stop();
      }
      // The emulator's own DuckDB file, read once it has stopped: its time-travel copies are the tables of one schema.
      const copies = execFileSync(venvPython, [
        '-c',
        `import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); print(c.execute("select count(*) from information_schema.tables where table_schema = '_bqemulator_snapshots'").fetchone()[0])`,
        path.join(dataDir, 'bqemulator.duckdb'),
      ], { encoding: 'utf8' });
      expect(Number(copies.trim())).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
