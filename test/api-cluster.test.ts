import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { billingDayOf } from '../core/billing-day.js';
import { freePort } from '../devstack/process.js';
import { childrenOf, processTable } from '../devstack/process-table.js';
import { projectRoot } from '../devstack/tools.js';
import { eventually } from './support/eventually.js';
import { apiProcessEnv, startTestTally, type TestTally } from './support/stack.js';

// API_PROCESSES=2: the API as its own process tree, as `npm start` or a deployment runs it. Both
// processes serve the port, a scrape of /metrics on either sees the sum of both, and SIGTERM
// stops them all in order.

let tally: TestTally;
let api: ChildProcess;
let url: string;
let log = '';
const run = `cluster-${Date.now()}`;

/** The API process tree: tsx runs node, whose cluster primary forks the API processes. */
function apiProcesses(): number[] {
  const table = processTable();
  const primaries = childrenOf(api.pid!, table).flatMap((p) => [p, ...childrenOf(p, table)]);
  return primaries.flatMap((p) => childrenOf(p, table)).filter((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('api/main.ts'));
}

beforeAll(async () => {
  tally = await startTestTally();
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  api = spawn(path.join(projectRoot, 'node_modules', '.bin', 'tsx'), ['api/main.ts'], {
    cwd: projectRoot,
    env: apiProcessEnv(tally, { API_PORT: String(port), API_PROCESSES: '2', FORWARD_ENABLED: 'false', LOG_LEVEL: 'info' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  api.stdout!.on('data', (d) => (log += d));
  api.stderr!.on('data', (d) => (log += d));
  await eventually(async () => {
    expect((log.match(/"api listening"/g) ?? []).length).toBe(2);
  }, 60_000);
}, 90_000);

afterAll(async () => {
  if (api.exitCode === null) api.kill('SIGKILL');
  await tally?.close();
});

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers: { connection: 'close' } })).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('the API in two processes (API_PROCESSES=2)', () => {
  it('runs two API processes, and every scrape of /metrics, whichever answers, counts the requests of both', async () => {
    expect(apiProcesses()).toHaveLength(2);
    const issued = await fetch(`${url}/admin/api-keys`, {
      method: 'POST', headers: { ...tally.adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ name: run, scopes: ['ingest'] }),
    });
    const key = ((await issued.json()) as { key: string }).key;
    const day = billingDayOf(Date.now());
    for (let r = 0; r < 20; r++) {
      // A new connection each time: the cluster hands connections to its processes in turn.
      const res = await fetch(`${url}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', connection: 'close' },
        body: JSON.stringify({ events: Array.from({ length: 5 }, (_, i) => ({
          uniqueKey: `${run}-${r}-${i}`, internalInstanceId: 'cluster-instance', timestamp: `${day}T00:00:00Z`, amounts: { 'container-seconds': 1 },
        })) }),
      });
      expect(res.status).toBe(200);
    }
    // Connections go to the processes in turn, so each served some requests and counted only
    // those: only the sum makes 100 on every scrape (without it a scrape reads one process's part).
    for (let i = 0; i < 4; i++) expect(await metric('tally_ingest_events_total{status="accepted"}')).toBe(100);
    const keys = await tally.db.query('SELECT count(*)::int AS n FROM event_keys WHERE event_key LIKE $1', [`${run}-%`]);
    expect(keys.rows[0].n).toBe(100);
  }, 60_000);

  it('stops every process on SIGTERM and exits 0', async () => {
    const processes = apiProcesses();
    const exited = new Promise<number | null>((resolve) => api.once('exit', (code) => resolve(code)));
    api.kill('SIGTERM');
    expect(await exited).toBe(0);
    for (const pid of processes) expect(fs.existsSync(`/proc/${pid}`)).toBe(false);
  }, 30_000);
});

describe('an API whose port is taken', () => {
  // Each started API leads its own process group, so that a failure here (an API that never
  // exits) leaves no process tree behind: the test ends, and the group with it.
  const groups: number[] = [];
  afterAll(() => {
    for (const pid of groups) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  /** Runs the API with its forward port held by another server; resolves with its exit code and output. */
  async function startOnTakenPort(processes: string): Promise<{ code: number | null; output: string; port: number }> {
    const port = await freePort();
    const holder = net.createServer().listen(port, '127.0.0.1');
    await new Promise((r) => holder.once('listening', r));
    try {
      const child = spawn(path.join(projectRoot, 'node_modules', '.bin', 'tsx'), ['api/main.ts'], {
        cwd: projectRoot,
        env: apiProcessEnv(tally, { API_PORT: String(await freePort()), API_PROCESSES: processes, FORWARD_PORT: String(port), LOG_LEVEL: 'info' }),
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      groups.push(child.pid!);
      let output = '';
      child.stdout!.on('data', (d) => (output += d));
      child.stderr!.on('data', (d) => (output += d));
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      return { code, output, port };
    } finally {
      holder.close();
    }
  }

  // Before, a cluster's primary started the failing process again every second, for ever.
  it('in two processes: the primary stops, exits 1, and the log names the port and its variable', async () => {
    const { code, output, port } = await startOnTakenPort('2');
    expect(code).toBe(1);
    expect(output).toContain(`port ${port} (FORWARD_PORT) is already in use`);
    expect(output).toContain('an api process cannot start');
    expect(output).not.toContain('starting another');
  }, 60_000);

  it('in one process: it exits with the same message', async () => {
    const { code, output, port } = await startOnTakenPort('1');
    expect(code).toBe(78);
    expect(output).toContain(`port ${port} (FORWARD_PORT) is already in use`);
  }, 60_000);
});
