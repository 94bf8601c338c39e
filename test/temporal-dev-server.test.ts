import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startTemporalDevServer, type TemporalDevServer } from '../devstack/temporal.js';
import { freePort } from '../devstack/process.js';

// The local stack's Temporal dev server starts again when it exits with "address already in use",
// judging by the lines of that start only (devstack/temporal.ts).

const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-temporal-start-'));
const logFile = path.join(logDir, 'temporal.log');
const started: TemporalDevServer[] = [];
afterAll(async () => {
  await Promise.all(started.map((s) => s.process.stop()));
  fs.rmSync(logDir, { recursive: true, force: true });
});

const inUse = (text: string) => text.match(/address already in use/g)?.length ?? 0;

describe('the Temporal dev server start', () => {
  it('is tried again when its port is taken, and comes up once the port is free', async () => {
    const port = await freePort();
    const uiPort = await freePort();
    // Something else holds the frontend port until the first start has failed on it.
    const holder = net.createServer().listen(port, '127.0.0.1');
    await new Promise((r) => holder.once('listening', r));
    const released = (async () => {
      while (!(fs.existsSync(logFile) && inUse(fs.readFileSync(logFile, 'utf8')) > 0)) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => holder.close(r));
    })();
    const server = await startTemporalDevServer({ port, uiPort, logDir });
    started.push(server);
    await released;
    expect(inUse(fs.readFileSync(logFile, 'utf8'))).toBe(1);
    const ui = await fetch(server.uiUrl);
    expect(ui.ok).toBe(true);
  });

  it('is not tried again for another failure, even after an earlier start failed on a taken port', async () => {
    // The log already holds the first test's "address already in use"; this start fails otherwise.
    const before = fs.readFileSync(logFile, 'utf8');
    expect(inUse(before)).toBeGreaterThan(0);
    const dbFile = path.join(logDir, 'no-such-folder', 'temporal.sqlite');
    await expect(startTemporalDevServer({ port: await freePort(), uiPort: await freePort(), logDir, dbFile })).rejects.toThrow(/exited during start/);
    const written = fs.readFileSync(logFile, 'utf8').slice(before.length);
    expect(written.length).toBeGreaterThan(0);
    // One start: its failure is in the log once.
    const firstLine = written.split('\n').find((l) => l.trim().length > 0)!;
    expect(written.split(firstLine).length - 1).toBe(1);
  });
});
