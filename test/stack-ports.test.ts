import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createBigQuery } from '../activities/clients.js';
import { startBigQueryEmulator, type BigQueryEmulator } from '../devstack/bigquery-emulator.js';
import { startEmbeddedPostgres, type EmbeddedBillingDb } from '../devstack/postgres.js';
import { freePort, PortTakenError } from '../devstack/process.js';
import { projectRoot } from '../devstack/tools.js';

// The local stack picks free ports and then starts its servers side by side; another server (the
// Temporal dev server picks ports for its internal services as it starts) can take one of them
// first, while Python loads or initdb runs. The port then accepts connections, so waiting for it
// was not enough: once, every test's request to the emulator failed with "Parse Error: Expected
// HTTP/" (devstack/bigquery-emulator.ts, devstack/postgres.ts).

const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-stack-ports-'));
fs.mkdirSync(path.join(projectRoot, '.data'), { recursive: true });
// Under the project, not /tmp: as root, Postgres runs as its own user, which must reach the folder.
const pgDir = fs.mkdtempSync(path.join(projectRoot, '.data', 'stack-ports-'));
fs.chmodSync(pgDir, 0o755);
const started: BigQueryEmulator[] = [];
const databases: EmbeddedBillingDb[] = [];
const holders: http2.Http2Server[] = [];
afterAll(async () => {
  await Promise.all(started.map((e) => e.process.stop()));
  await Promise.all(databases.map((d) => d.stop()));
  fs.rmSync(pgDir, { recursive: true, force: true });
  await Promise.all(holders.map((h) => new Promise((r) => h.close(r))));
  fs.rmSync(logDir, { recursive: true, force: true });
});

/** A free port, then held by a gRPC-like server (HTTP/2 without TLS), as the Temporal dev server's internal services are. */
async function heldPort(): Promise<number> {
  const port = await freePort();
  const holder = http2.createServer((_req, res) => res.end('not the emulator'));
  holders.push(holder);
  await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
  return port;
}

describe('the BigQuery emulator start', () => {
  it('moves to other ports when another server holds its REST port, and then answers as BigQuery', { timeout: 180_000 }, async () => {
    const taken = await heldPort();
    let asked = 0;
    const emulator = await startBigQueryEmulator({
      port: taken, grpcPort: await freePort(), projectId: 'moved', logDir,
      choosePorts: async () => (asked++, { port: await freePort(), grpcPort: await freePort() }),
    });
    started.push(emulator);
    expect(asked).toBe(1);
    expect(emulator.apiEndpoint).not.toBe(`http://127.0.0.1:${taken}`);
    const [datasets] = await createBigQuery({ projectId: 'moved', apiEndpoint: emulator.apiEndpoint }).getDatasets();
    expect(datasets).toEqual([]);
  });

  it('says the port is taken when it may not choose others', { timeout: 180_000 }, async () => {
    const taken = await heldPort();
    await expect(startBigQueryEmulator({ port: taken, grpcPort: await freePort(), projectId: 'stuck', logDir })).rejects.toBeInstanceOf(PortTakenError);
  });
});

describe('the embedded Postgres start', () => {
  it('moves to another port when another server holds its own, and then takes connections', { timeout: 180_000 }, async () => {
    const taken = await heldPort();
    let asked = 0;
    const db = await startEmbeddedPostgres({
      dataDir: path.join(pgDir, 'data'), port: taken, logDir,
      choosePort: async () => (asked++, freePort()),
    });
    databases.push(db);
    expect(asked).toBe(1);
    expect(db.databaseUrl).not.toContain(`:${taken}/`);
    const client = new pg.Client({ connectionString: db.databaseUrl });
    await client.connect();
    try {
      expect((await client.query('SELECT current_database() AS name')).rows[0].name).toBe('tally');
    } finally {
      await client.end();
    }
  });
});
