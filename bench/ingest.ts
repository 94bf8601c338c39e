// Ingest benchmark: (1) a bare Fastify endpoint that only parses and validates the batches,
// (2) Tally's ingest with the whole stack up (API and worker as their own processes), both loaded
// from this process over loopback with autocannon. Writes docs/benchmarks.md.
//   npm run bench:ingest -- [--batch 500] [--requests 600] [--connections 16]
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { billingDayOf } from '../core/billing-day.js';
import { startLocalStack } from '../devstack/index.js';
import { freePort } from '../devstack/process.js';
import { projectRoot } from '../devstack/tools.js';
import { forwardLoad } from './forward-load.js';
import { writeBenchmarkSection } from './results.js';

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '500' },
    requests: { type: 'string', default: '600' },
    connections: { type: 'string', default: '16' },
    // --no-drain: no worker, so nothing drains the outbox into the emulator during the run; it
    // separates the cost of accepting durably from the cost of the local BigQuery emulator.
    'no-drain': { type: 'boolean', default: false },
  },
});
const batchSize = Number(args.batch);
const requests = Number(args.requests);
const connections = Number(args.connections);

interface Run { eventsPerSecond: number; requestsPerSecond: number; p50: number; p99: number; errors: number }

function bodies(prefix: string, count: number): string[] {
  const day = billingDayOf(Date.now());
  return Array.from({ length: count }, (_, r) => JSON.stringify({
    events: Array.from({ length: batchSize }, (_, i) => ({
      uniqueKey: `${prefix}-${r}-${i}`,
      internalInstanceId: `bench-instance-${i % 50}`,
      timestamp: `${day}T00:${String(i % 60).padStart(2, '0')}:00Z`,
      amounts: { 'container-seconds': 1 + (i % 3600), 'node-seconds': 60 },
      metadata: { service: 'bench' },
    })),
  }));
}

let authorization = '';

async function load(url: string, label: string, opts: { rate?: number }): Promise<Run> {
  const payloads = bodies(`${label}-${randomBytes(4).toString('hex')}`, requests);
  let next = 0;
  // Timed from the first request to the last response: autocannon ends a run on a tick of its
  // one-second timer, which would add up to a second of idling to a short run.
  const started = performance.now();
  let lastResponse = started;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
    url: `${url}/v1/events`,
    method: 'POST',
    connections: opts.rate ? Math.max(2, Math.ceil(connections / 2)) : connections,
    amount: requests,
    overallRate: opts.rate,
    timeout: 30,
    headers: { 'content-type': 'application/json', authorization },
    requests: [{ setupRequest: (req) => ({ ...req, body: payloads[next++ % payloads.length] }) }],
    }, (err, res) => (err ? reject(err) : resolve(res)));
    instance.on('response', () => (lastResponse = performance.now()));
  });
  const seconds = (lastResponse - started) / 1000;
  const ok = result['2xx'];
  if (result['2xx'] === 0) throw new Error(`${label}: no request succeeded (${result.non2xx} non-2xx, ${result.errors} errors)`);
  process.stderr.write(`  ${label}${opts.rate ? ` at ${opts.rate} req/s` : ''}: ${ok}/${requests} ok in ${seconds.toFixed(1)} s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms\n`);
  return {
    requestsPerSecond: ok / seconds,
    eventsPerSecond: (ok * batchSize) / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.non2xx + result.errors + result.timeouts,
  };
}

function startChild(name: string, script: string, env: Record<string, string>, logDir: string): ChildProcess {
  const log = fs.openSync(path.join(logDir, `${name}.log`), 'a');
  // BENCH_PROFILE=dir: each process writes a CPU profile there (open it in Chrome DevTools).
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE] : [];
  return spawn(path.join(projectRoot, 'node_modules', '.bin', 'tsx'), [...profile, script], {
    cwd: projectRoot, env: { ...process.env, ...env }, stdio: ['ignore', log, log],
  });
}

async function waitForHttp(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not come up`);
}

const dataDir = path.join(projectRoot, '.data', `bench-${process.pid}`);
fs.mkdirSync(dataDir, { recursive: true, mode: 0o755 });
const children: ChildProcess[] = [];
const stack = await startLocalStack({ dataDir, persistent: false, ports: 'free' });
try {
  const forwardPort = await freePort();
  const adminToken = `bench-${randomBytes(12).toString('hex')}`;
  const env = { ...stack.env, ADMIN_TOKEN: adminToken, LOG_LEVEL: 'warn', WORKER_METRICS_PORT: String(await freePort()), FORWARD_PORT: String(forwardPort) };
  const baselinePort = await freePort();
  const apiPort = await freePort();
  children.push(startChild('baseline', 'bench/baseline-server.ts', { ...env, API_PORT: String(baselinePort) }, path.join(dataDir, 'logs')));
  if (!args['no-drain']) children.push(startChild('worker', 'workers/main.ts', env, path.join(dataDir, 'logs')));
  const baselineUrl = `http://127.0.0.1:${baselinePort}`;
  children.push(startChild('api', 'api/main.ts', { ...env, API_PORT: String(apiPort) }, path.join(dataDir, 'logs')));
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  await waitForHttp(`${apiUrl}/healthz`);
  const issued = await fetch(`${apiUrl}/admin/api-keys`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` }, body: JSON.stringify({ name: 'bench', scopes: ['ingest'] }),
  });
  authorization = `Bearer ${((await issued.json()) as { key: string }).key}`;
  await waitForHttp(`${baselineUrl}/healthz`).catch(() => undefined);

  process.stderr.write(`Ingest benchmark: ${requests} requests of ${batchSize} events, ${connections} connections\n`);
  await load(baselineUrl, 'warm-up baseline', {});
  const baseline = await load(baselineUrl, 'baseline', {});
  await load(apiUrl, 'warm-up tally', {});
  const tally = await load(apiUrl, 'tally', {});
  const half = Math.max(1, Math.floor(tally.requestsPerSecond / 2));
  const tallyHalf = await load(apiUrl, 'tally half load', { rate: half });
  const baselineHalf = await load(baselineUrl, 'baseline half load', { rate: Math.max(1, Math.floor(baseline.requestsPerSecond / 2)) });

  const forwardOpts = { port: forwardPort, connections: 8, messages: requests, batch: batchSize, day: billingDayOf(Date.now()) };
  await forwardLoad({ ...forwardOpts, messages: Math.ceil(requests / 4), prefix: `fwd-warm-${randomBytes(4).toString('hex')}` });
  const forward = await forwardLoad({ ...forwardOpts, prefix: `fwd-${randomBytes(4).toString('hex')}` });
  process.stderr.write(`  forward: ${forward.messages - forward.errors}/${forward.messages} acked, ${Math.round(forward.eventsPerSecond)} events/s, p50 ${forward.p50} ms, p99 ${forward.p99} ms\n`);

  const ratio = tally.eventsPerSecond / baseline.eventsPerSecond;
  const row = (name: string, max: Run, halfRun: Run) =>
    `| ${name} | ${Math.round(max.eventsPerSecond).toLocaleString('en-US')} | ${max.requestsPerSecond.toFixed(1)} | ${halfRun.p50} | ${halfRun.p99} | ${max.errors + halfRun.errors} |`;
  const section = [
    args['no-drain'] ? '## Ingest without the drain (`npm run bench:ingest -- --no-drain`)' : '## Ingest (`npm run bench:ingest`)',
    '',
    `Run ${new Date().toISOString()} on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version}.`,
    `${requests} requests of ${batchSize} events (2 amount types each), ${connections} connections, loopback; latency at half of each one's maximum rate.`,
    '',
    '| endpoint | events/s accepted | requests/s | p50 ms at half load | p99 ms at half load | errors |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    row('baseline: bare Fastify, parse + validate', baseline, baselineHalf),
    row(args['no-drain'] ? 'Tally: durable ingest, no worker draining into the emulator' : 'Tally: durable ingest, whole stack up', tally, tallyHalf),
    `| Tally: Fluentd forward, msgpack Forward mode with acks, 8 senders (latency at full load) | ${Math.round(forward.eventsPerSecond).toLocaleString('en-US')} | ${(forward.eventsPerSecond / batchSize).toFixed(1)} | ${forward.p50} | ${forward.p99} | ${forward.errors} |`,
    '',
    `Ratio Tally / baseline: **${ratio.toFixed(2)}**. Targets: ≥ 50,000 events/s, ratio ≥ 0.5, p99 ≤ 50 ms at half load.`,
    '',
  ].join('\n');
  process.stderr.write(`\n${section}\n`);
  writeBenchmarkSection(args['no-drain'] ? 'Ingest without the drain' : 'Ingest', section);
} finally {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
  await stack.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
