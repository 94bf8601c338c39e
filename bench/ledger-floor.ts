// The floor under the ingest ratio: what durable dedupe must cost per request of 500 events, each
// part measured alone on this machine, against what the issue's baseline (parse and validate)
// costs. From them, the highest ratio Tally could reach on these cores if it spent nothing else
// (docs/benchmarks.md, "Ingest: the floor"). Writes docs/benchmarks.md.
//   npm run bench:ledger-floor -- [--rounds 12] [--chunk 100]
import { spawn } from 'node:child_process';
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
import { freePort } from '../devstack/process.js';
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

const ms = (n: number) => n.toFixed(2);

const dataDir = path.join(projectRoot, '.data', `bench-floor-${process.pid}`);
fs.mkdirSync(dataDir, { recursive: true, mode: 0o755 });
const children: ReturnType<typeof spawn>[] = [];
let db: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
const bar = new SingleBar({ format: 'ledger floor [{bar}] {value}/{total} {step}', hideCursor: true });
const steps = 2 + rounds * 2;
try {
  bar.start(steps, 0, { step: 'the bare endpoint over HTTP' });
  // (1) The issue's baseline over HTTP, as the ingest benchmark runs it: its CPU per request,
  // parsing the HTTP request and writing the answer included.
  const port = await freePort();
  const baseline = spawn(path.join(projectRoot, 'node_modules', '.bin', 'tsx'), ['bench/baseline-server.ts'], {
    cwd: projectRoot, env: { ...process.env, API_PORT: String(port) }, stdio: 'ignore',
  });
  children.push(baseline);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break;
    if (i > 300) throw new Error('the baseline server did not answer within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  const http = { path: '/v1/events', greeting: '/healthz', headers: { 'content-type': 'application/json' }, connections: 4 };
  await closedLoad({ url, ...http, bodies: bodies('warm', 200), requests: 200 });
  const httpCpu: number[] = [];
  const httpRate: number[] = [];
  for (let r = 0; r < 3; r++) {
    const sent = bodies('http', 400);
    const before = processTable();
    const result = await closedLoad({ url, ...http, bodies: sent, requests: sent.length });
    const cpu = cpuByComponent(before, processTable(), [{ name: 'baseline', pids: [baseline.pid!] }]).find((c) => c.name === 'baseline')?.seconds ?? 0;
    if (result.ok !== sent.length) throw new Error(`the baseline answered ${result.ok} of ${sent.length} requests with a 2xx`);
    httpCpu.push((cpu * 1000) / sent.length);
    httpRate.push(sent.length / result.seconds);
  }
  baseline.kill('SIGTERM');
  bar.increment(1, { step: 'Postgres' });

  // (2) Postgres of its own, migrated as Tally's; one connection, each statement its own transaction.
  db = await startEmbeddedPostgres({ dataDir: path.join(dataDir, 'postgres'), port: await freePort(), logDir: dataDir, choosePort: freePort });
  const pool = new pg.Pool({ connectionString: db.databaseUrl, max: 1 });
  await migrate(pool);
  const client = await pool.connect();
  await client.query('CREATE TABLE floor_key_hash (event_key text COLLATE "C" PRIMARY KEY, payload_hash bytea NOT NULL)');
  await client.query('CREATE TABLE floor_key (event_key text COLLATE "C" PRIMARY KEY)');
  const backend = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  /** The connection's backend's CPU so far, in ms (/proc, ticks of 10 ms). */
  const backendMs = (): number => {
    const fields = fs.readFileSync(`/proc/${backend}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  };
  const now = Date.now();
  const { weeks, oldestWeek } = claimWindow({ now, windowDays: rules.backdatingWindowDays });
  bar.increment(1, { step: 'round 1: the API\'s side' });

  // (3) The API's side, in this process: what a request's events cost before Postgres.
  const apiSteps: Record<string, (body: Buffer) => unknown> = {
    'parse the JSON': (body) => JSON.parse(body.toString('utf8')),
    'parse and validate (the baseline\'s work)': (body) => {
      const { events } = JSON.parse(body.toString('utf8')) as { events: unknown[] };
      for (const e of events) checkEvent(e, rules, now);
    },
    'parse and prepare the batch (Tally\'s: validate, payloads and their SHA-256, outbox JSON and gzip, ledger batch)': (body) =>
      prepareBatch((JSON.parse(body.toString('utf8')) as { events: unknown[] }).events, rules, now),
  };
  // (4) Postgres's side: the statement Tally sends for a batch of new keys, and lesser ledgers.
  const statements: Record<string, (b: PreparedBatch) => Promise<unknown>> = {
    'Tally\'s statement: claim in the ledger (week, key, payload hash, batch), earlier-week lookup, outbox row': (b) => client.query({
      name: 'tally', text: 'SELECT tally_ingest_new_batch_v2($1, $2, $3, $4, $5, $6, $7)',
      values: [weeks, b.ledger.keys, b.ledger.digests, randomUUID(), oldestWeek, b.outboxEvents, b.keys.length],
    }),
    'the same ledger rows alone (no lookup, no outbox row)': (b) => client.query({
      name: 'rows', text: `INSERT INTO event_keys (claim_week, event_key, payload_hash, batch_id)
        SELECT w, k, substring($3::bytea FROM (i::integer - 1) * 32 + 1 FOR 32), $4
        FROM unnest($1::date[]) AS w, unnest($2::text[]) WITH ORDINALITY AS c(k, i) ORDER BY k COLLATE "C", w`,
      values: [weeks, b.ledger.keys, b.ledger.digests, randomUUID()],
    }),
    'a ledger of key and payload hash only': (b) => client.query({
      name: 'key-hash', text: `INSERT INTO floor_key_hash SELECT k, substring($2::bytea FROM (i::integer - 1) * 32 + 1 FOR 32)
        FROM unnest($1::text[]) WITH ORDINALITY AS c(k, i)`,
      values: [b.ledger.keys, b.ledger.digests],
    }),
    'a ledger of the key only': (b) => client.query({ name: 'key', text: 'INSERT INTO floor_key SELECT unnest($1::text[])', values: [b.ledger.keys] }),
    'the outbox row alone': (b) => client.query({
      name: 'outbox', text: 'INSERT INTO ingest_batches (batch_id, events_gzip, event_count) VALUES ($1, $2, $3)', values: [randomUUID(), b.outboxEvents, b.keys.length],
    }),
    'an empty statement (SELECT 1)': () => client.query('SELECT 1'),
  };
  const apiMs = new Map<string, number[]>();
  const pgMs = new Map<string, number[]>();
  const steal = stealOver();
  const started = performance.now();
  for (let r = 0; r < rounds; r++) {
    for (const [name, step] of Object.entries(apiSteps)) {
      const sent = bodies('api');
      const before = process.cpuUsage();
      for (const body of sent) step(body);
      const used = process.cpuUsage(before);
      apiMs.set(name, [...(apiMs.get(name) ?? []), (used.user + used.system) / 1000 / sent.length]);
    }
    bar.increment(1, { step: `round ${r + 1}: Postgres's side` });
    for (const [name, statement] of Object.entries(statements)) {
      const batches = bodies('pg').map((body) => prepareBatch((JSON.parse(body.toString('utf8')) as { events: unknown[] }).events, rules, now));
      const before = backendMs();
      for (const b of batches) await statement(b);
      pgMs.set(name, [...(pgMs.get(name) ?? []), (backendMs() - before) / batches.length]);
    }
    bar.increment(1, { step: `round ${r + 1} done` });
  }
  const stolen = steal((performance.now() - started) / 1000);
  client.release();
  await pool.end();
  bar.stop();

  const med = (m: Map<string, number[]>, name: string) => median(m.get(name)!);
  const range = (m: Map<string, number[]>, name: string) => `${ms(Math.min(...m.get(name)!))}–${ms(Math.max(...m.get(name)!))}`;
  const [parseName, baselineName, tallyName] = Object.keys(apiSteps) as [string, string, string];
  const [tallyStatement, , , keyOnly, outboxOnly] = Object.keys(statements) as [string, string, string, string, string];
  const bare = median(httpCpu);
  /** What the bare endpoint spends on HTTP beyond its parse and validation: Tally's API spends it too. */
  const httpMs = Math.max(0, bare - med(apiMs, baselineName));
  const tallyApi = med(apiMs, tallyName) + httpMs;
  /**
   * The ratio if Tally's two cores did nothing but this work (no load generator, no drain, no
   * garbage collection beyond what the chunks measured), against the bare endpoint on one core,
   * as the ingest benchmark runs it (its process is single-threaded).
   */
  const ceiling = (postgresMs: number) => (2 / (tallyApi + postgresMs)) / (1 / bare);
  const withTally = ceiling(med(pgMs, tallyStatement));
  const withKeyOnly = ceiling(med(pgMs, keyOnly) + med(pgMs, outboxOnly));
  const cores = os.cpus();
  const section = [
    '## Ingest: the floor (`npm run bench:ledger-floor`)',
    '',
    `Run ${new Date().toISOString()} on ${cores.length} cores (${cores[0]?.model.split(' ').slice(0, 2).join(' ') ?? 'unknown'}), Node ${process.version}${stolen === undefined ? '' : `, the host's steal ${(stolen * 100).toFixed(1)} % over the rounds`}.`,
    `Requests of ${batchSize} events (the ingest benchmark's bodies, fresh keys each), ${rounds} rounds of ${chunk}-request chunks, the steps alternating; medians of the chunks (range).`,
    '',
    '| measured | CPU ms per request | range |',
    '| --- | ---: | ---: |',
    `| the issue's baseline over HTTP (bare Fastify endpoint, 4 connections, 3 × 400 requests; ${Math.round(median(httpRate))} requests/s) | ${ms(bare)} | ${ms(Math.min(...httpCpu))}–${ms(Math.max(...httpCpu))} |`,
    ...Object.keys(apiSteps).map((name) => `| in one process: ${name} | ${ms(med(apiMs, name))} | ${range(apiMs, name)} |`),
    ...Object.keys(statements).map((name) => `| Postgres backend: ${name} | ${ms(med(pgMs, name))} | ${range(pgMs, name)} |`),
    '',
    `HTTP beyond parse and validation (the bare endpoint less the in-process baseline work): ${ms(httpMs)} ms. Tally's API cannot spend less than its prepared batch plus that: ${ms(tallyApi)} ms (parsing alone: ${ms(med(apiMs, parseName))}).`,
    `If Tally's two cores did only this work, against the bare endpoint on one core, the ratio could reach at most **${withTally.toFixed(2)}** with the ledger Tally keeps, and ${withKeyOnly.toFixed(2)} with a ledger of bare keys and an outbox row (no payload hash, no claim week, no lookup of earlier weeks). The ingest benchmark's measured ratio is lower still: its API spends more than this floor (garbage collection under load, the Postgres protocol, the answer), and the load generator, the drain and the emulator share the cores (docs/benchmarks.md, "Notes on the ingest figures").`,
  ].join('\n');
  const file = writeBenchmarkSection('Ingest: the floor', section);
  process.stdout.write(`${section}\n\nWritten to ${file}\n`);
} finally {
  bar.stop();
  for (const child of children) child.kill('SIGTERM');
  await db?.stop();
  if (!process.env.BENCH_KEEP) fs.rmSync(dataDir, { recursive: true, force: true });
}
