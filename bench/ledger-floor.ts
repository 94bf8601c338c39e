// The floor under the ingest ratio: what durable dedupe must cost per request of 500 events, each
// part measured alone on this machine, against what the issue's baseline (parse and validate)
// costs. From them, the highest ratio Tally could reach on these cores if it spent nothing else
// (docs/benchmarks.md, "Ingest: the floor"). Writes docs/benchmarks.md.
//   npm run bench:ledger-floor -- [--rounds 12] [--chunk 100]
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { SingleBar } from 'cli-progress';
import { eventRulesFromConfig } from '../api/event-rules.js';
import { prepareBatch, type PreparedBatch } from '../api/ingest.js';
import { claimWindow } from '../api/key-ledger.js';
import { loadConfig } from '../core/config.js';
import { checkEvent } from '../core/usage-event.js';
import { migrate } from '../db/migrate.js';
import { startEmbeddedPostgres } from '../devstack/postgres.js';
import { freePort, startProcess, waitForPort, type ManagedProcess } from '../devstack/process.js';
import { processTable } from '../devstack/process-table.js';
import { projectRoot } from '../devstack/tools.js';
import { benchBody } from './batches.js';
import { closedLoad } from './closed-load.js';
import { cpuByComponent, stealOver } from './cpu-usage.js';
import { median, writeBenchmarkSection } from './results.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '12' }, chunk: { type: 'string', default: '100' }, batch: { type: 'string', default: '500' } } });
const rounds = Number(args.rounds);
const chunk = Number(args.chunk);
const batchSize = Number(args.batch);
for (const [name, n] of [['rounds', rounds], ['chunk', chunk], ['batch', batchSize]] as const) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: a whole number of at least 1, not "${args[name]}"`);
}
const config = loadConfig();
const rules = eventRulesFromConfig(config);
const run = randomBytes(4).toString('hex');
let bodyCount = 0;
/** Fresh bodies (keys never sent before), made before a measurement so that their making is not counted in it. */
const bodies = (label: string, n = chunk): Buffer[] => Array.from({ length: n }, () => benchBody(`${run}-${label}`, bodyCount++, batchSize));

/** A figure in ms, as the tables print it. */
const fmt = (n: number) => n.toFixed(2);

const dataDir = path.join(projectRoot, '.data', `bench-floor-${process.pid}`);
fs.mkdirSync(dataDir, { recursive: true, mode: 0o755 });
let baseline: ManagedProcess | undefined;
let db: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
const bar = new SingleBar({ format: 'ledger floor [{bar}] {value}/{total} {step}', hideCursor: true });
const steps = 2 + (rounds + 1) * 2;
const PARSE = 'parse the JSON';
const VALIDATE = "parse and validate (the baseline's work)";
const PREPARE = "parse and prepare the batch (Tally's: validate, payloads and their SHA-256, outbox JSON and gzip, ledger batch)";
const TALLY_STATEMENT = "Tally's statement: claim in the ledger (week, key, payload hash, batch), earlier-week lookup, outbox row";
const KEY_ONLY = 'a ledger of the key only';
const OUTBOX_ONLY = 'the outbox row alone';
let pool: pg.Pool | undefined;
let client: pg.PoolClient | undefined;
try {
  bar.start(steps, 0, { step: 'the bare endpoint over HTTP' });
  // (1) The issue's baseline over HTTP, as the ingest benchmark runs it: its CPU per request,
  // parsing the HTTP request and writing the answer included.
  const port = await freePort();
  const baselineLog = path.join(dataDir, 'baseline.log');
  baseline = startProcess('baseline server', path.join(projectRoot, 'node_modules', '.bin', 'tsx'), ['bench/baseline-server.ts'], {
    cwd: projectRoot, env: { ...process.env, API_PORT: String(port) }, logFile: baselineLog,
  });
  await waitForPort(baseline, port, 30_000, baselineLog);
  const url = `http://127.0.0.1:${port}`;
  // At 16 connections, as the ingest benchmark loads it: its rate is the one Tally is compared with.
  const http = { path: '/v1/events', greeting: '/healthz', headers: { 'content-type': 'application/json' }, connections: 16 };
  await closedLoad({ url, ...http, bodies: bodies('warm', 200), requests: 200 });
  const httpCpu: number[] = [];
  const httpRate: number[] = [];
  for (let r = 0; r < 3; r++) {
    const sent = bodies('http', 400);
    const before = processTable();
    const result = await closedLoad({ url, ...http, bodies: sent, requests: sent.length });
    const cpu = cpuByComponent(before, processTable(), [{ name: 'baseline', pids: [baseline.child.pid!] }]).find((c) => c.name === 'baseline')?.seconds ?? 0;
    if (result.ok !== sent.length) throw new Error(`the baseline answered ${result.ok} of ${sent.length} requests with a 2xx`);
    httpCpu.push((cpu * 1000) / sent.length);
    httpRate.push(sent.length / result.seconds);
  }
  // Gone before Postgres is measured.
  await baseline.stop();
  bar.increment(1, { step: 'Postgres' });

  // (2) Postgres of its own, migrated as Tally's; one connection, each statement its own transaction.
  db = await startEmbeddedPostgres({ dataDir: path.join(dataDir, 'postgres'), port: await freePort(), logDir: dataDir, choosePort: freePort });
  pool = new pg.Pool({ connectionString: db.databaseUrl, max: 1 });
  // Postgres stops at the end while the pool's connection may still be closing: not an error here.
  pool.on('error', () => undefined);
  await migrate(pool);
  client = await pool.connect();
  const conn = client;
  await client.query('CREATE TABLE floor_key_hash (event_key text COLLATE "C" PRIMARY KEY, payload_hash bytea NOT NULL)');
  await client.query('CREATE TABLE floor_key (event_key text COLLATE "C" PRIMARY KEY)');
  const backend = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  /**
   * The connection's backend's time on a CPU so far, in ms: /proc/<pid>/schedstat counts it in
   * nanoseconds, where /proc/<pid>/stat's ticks of 10 ms would round a cheap statement to nothing.
   */
  const backendMs = (): number => Number(fs.readFileSync(`/proc/${backend}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  const now = Date.now();
  const { weeks, oldestWeek } = claimWindow({ now, windowDays: rules.backdatingWindowDays });
  bar.increment(1, { step: 'warm-up round: the API\'s side' });

  // (3) The API's side, in this process: what a request's events cost before Postgres.
  const apiSteps: Record<string, (body: Buffer) => unknown> = {
    [PARSE]: (body) => JSON.parse(body.toString('utf8')),
    [VALIDATE]: (body) => {
      const { events } = JSON.parse(body.toString('utf8')) as { events: unknown[] };
      for (const e of events) checkEvent(e, rules, now);
    },
    [PREPARE]: (body) =>
      prepareBatch((JSON.parse(body.toString('utf8')) as { events: unknown[] }).events, rules, now),
  };
  // (4) Postgres's side: the statement Tally sends for a batch of new keys, and lesser ledgers.
  const statements: Record<string, (b: PreparedBatch) => Promise<unknown>> = {
    [TALLY_STATEMENT]: (b) => conn.query({
      name: 'tally', text: 'SELECT tally_ingest_new_batch_v2($1, $2, $3, $4, $5, $6, $7)',
      values: [weeks, b.ledger.keys, b.ledger.digests, randomUUID(), oldestWeek, b.outboxEvents, b.keys.length],
    }),
    'the same ledger rows alone (no lookup, no outbox row)': (b) => conn.query({
      name: 'rows', text: `INSERT INTO event_keys (claim_week, event_key, payload_hash, batch_id)
        SELECT w, k, substring($3::bytea FROM (i::integer - 1) * 32 + 1 FOR 32), $4
        FROM unnest($1::date[]) AS w, unnest($2::text[]) WITH ORDINALITY AS c(k, i) ORDER BY k COLLATE "C", w`,
      values: [weeks, b.ledger.keys, b.ledger.digests, randomUUID()],
    }),
    'a ledger of key and payload hash only': (b) => conn.query({
      name: 'key-hash', text: `INSERT INTO floor_key_hash SELECT k, substring($2::bytea FROM (i::integer - 1) * 32 + 1 FOR 32)
        FROM unnest($1::text[]) WITH ORDINALITY AS c(k, i)`,
      values: [b.ledger.keys, b.ledger.digests],
    }),
    [KEY_ONLY]: (b) => conn.query({ name: 'key', text: 'INSERT INTO floor_key SELECT unnest($1::text[])', values: [b.ledger.keys] }),
    [OUTBOX_ONLY]: (b) => conn.query({
      name: 'outbox', text: 'INSERT INTO ingest_batches (batch_id, events_gzip, event_count) VALUES ($1, $2, $3)', values: [randomUUID(), b.outboxEvents, b.keys.length],
    }),
    'an empty statement (SELECT 1)': () => conn.query('SELECT 1'),
  };
  const apiMs = new Map<string, number[]>();
  const pgMs = new Map<string, number[]>();
  const steal = stealOver();
  const started = performance.now();
  /** Each round in another order (rotated), so that no step always follows the same one. */
  const rotated = <T>(items: T[], by: number): T[] => items.map((_, i) => items[(i + by) % items.length]!);
  // Round 0 warms up (statements prepared, code optimized) and is not counted.
  for (let r = 0; r <= rounds; r++) {
    const label = r === 0 ? 'warm-up round' : `round ${r} of ${rounds}`;
    for (const [name, step] of rotated(Object.entries(apiSteps), r)) {
      const sent = bodies('api');
      const before = process.cpuUsage();
      for (const body of sent) step(body);
      const used = process.cpuUsage(before);
      if (r > 0) apiMs.set(name, [...(apiMs.get(name) ?? []), (used.user + used.system) / 1000 / sent.length]);
    }
    bar.increment(1, { step: `${label}: Postgres's side` });
    for (const [name, statement] of rotated(Object.entries(statements), r)) {
      const batches = bodies('pg').map((body) => prepareBatch((JSON.parse(body.toString('utf8')) as { events: unknown[] }).events, rules, now));
      const before = backendMs();
      for (const b of batches) await statement(b);
      if (r > 0) pgMs.set(name, [...(pgMs.get(name) ?? []), (backendMs() - before) / batches.length]);
    }
    bar.increment(1, { step: r < rounds ? `round ${r + 1} of ${rounds}: the API's side` : 'done' });
  }
  const stolen = steal((performance.now() - started) / 1000);
  bar.stop();

  const med = (m: Map<string, number[]>, name: string) => median(m.get(name)!);
  const range = (values: number[]) => `${fmt(Math.min(...values))}–${fmt(Math.max(...values))}`;
  const bareCpuMs = median(httpCpu);
  const bareRate = median(httpRate);
  /**
   * An estimate of what the bare endpoint spends on HTTP beyond parsing and validating (the same
   * work timed in a tight loop here), which Tally's API spends too.
   */
  const httpMs = bareCpuMs - med(apiMs, VALIDATE);
  if (httpMs < 0) process.stderr.write(`The bare endpoint used less CPU per request (${fmt(bareCpuMs)} ms) than its work in a loop (${fmt(med(apiMs, VALIDATE))}): HTTP counted as 0.\n`);
  const tallyApiMs = med(apiMs, PREPARE) + Math.max(0, httpMs);
  /**
   * The ratio if Tally had both cores for this work alone (no load generator, no drain, nothing
   * but the chunks' own garbage collection), against the bare endpoint's measured rate.
   */
  const ceiling = (postgresMs: number) => 2000 / (tallyApiMs + postgresMs) / bareRate;
  const withTallysLedger = ceiling(med(pgMs, TALLY_STATEMENT));
  /** The same API work (payload hashes included), Postgres storing bare keys and the outbox row in two statements. */
  const withBareKeys = ceiling(med(pgMs, KEY_ONLY) + med(pgMs, OUTBOX_ONLY));
  const cores = os.cpus();
  const section = [
    '## Ingest: the floor (`npm run bench:ledger-floor`)',
    '',
    `Run ${new Date().toISOString()} on ${cores.length} cores (${cores[0]?.model.split(' ').slice(0, 2).join(' ') ?? 'unknown'}), Node ${process.version}${stolen === undefined ? '' : `, the host's steal ${(stolen * 100).toFixed(1)} % over the rounds`}.`,
    `Requests of ${batchSize} events (the ingest benchmark's bodies, fresh keys each). The bare endpoint: 3 × 400 requests at 16 connections, its process's CPU from /proc. The rest: ${rounds} counted rounds (after one warm-up round) of ${chunk}-request chunks, the steps in a rotated order each round; this process's CPU for the API's side, the backend's time on a CPU (/proc/<pid>/schedstat) for Postgres's. Medians of the chunks (range).`,
    '',
    '| measured | CPU ms per request | range |',
    '| --- | ---: | ---: |',
    `| the issue's baseline over HTTP (bare Fastify endpoint; ${Math.round(bareRate)} requests/s) | ${fmt(bareCpuMs)} | ${range(httpCpu)} |`,
    ...Object.keys(apiSteps).map((name) => `| in one process: ${name} | ${fmt(med(apiMs, name))} | ${range(apiMs.get(name)!)} |`),
    ...Object.keys(statements).map((name) => `| Postgres backend: ${name} | ${fmt(med(pgMs, name))} | ${range(pgMs.get(name)!)} |`),
    '',
    `HTTP beyond parsing and validating, estimated as the bare endpoint's CPU less the same work in a loop: ${fmt(httpMs)} ms. Tally's API work, at this floor: its prepared batch plus that, ${fmt(tallyApiMs)} ms (parsing alone: ${fmt(med(apiMs, PARSE))}).`,
    `If Tally had both cores for this work and nothing else, against the bare endpoint's ${Math.round(bareRate)} requests/s, the ratio would be about **${withTallysLedger.toFixed(2)}** with the ledger Tally keeps, and ${withBareKeys.toFixed(2)} if Postgres kept bare keys and the outbox row instead (the API's work unchanged). These are estimates from medians, before the load generator, the drain and the emulator take their share of the cores, and before whatever the API and Postgres spend beyond this work under load (docs/benchmarks.md, "Notes on the ingest figures").`,
  ].join('\n');
  const file = writeBenchmarkSection('Ingest: the floor', section);
  process.stdout.write(`${section}\n\nWritten to ${file}\n`);
} finally {
  bar.stop();
  client?.release();
  await pool?.end();
  await baseline?.stop();
  await db?.stop();
  if (!process.env.BENCH_KEEP) fs.rmSync(dataDir, { recursive: true, force: true });
}
