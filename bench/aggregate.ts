// Aggregation benchmark: one day of raw events in the BigQuery emulator (--events rows, 1 % of them
// duplicate copies of an insert id, --customers customers, the 4 amount types) aggregated into
// usage_daily by the aggregate-<day> workflow. Baseline, same run: the bare dailyUsage query. Then
// the hourly scheduled aggregation with no new events, counting the BigQuery jobs it starts through
// a counting proxy in front of the emulator. Writes docs/benchmarks.md.
//   npm run bench:aggregate -- [--events 10000000] [--customers 1000] [--farm: also time FARM_FINGERPRINT, the checksum before]
import { Client, Connection } from '@temporalio/client';
import { SingleBar } from 'cli-progress';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createBigQuery } from '../activities/clients.js';
import { KEY_FINGERPRINT, RawEventStore, type DailyUsageLine } from '../activities/raw-events.js';
import { billingDayOf } from '../core/billing-day.js';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { createPool } from '../db/pool.js';
import { startLocalStack } from '../devstack/index.js';
import { bqEmulatorHome, projectRoot, venvBin } from '../devstack/tools.js';
import { startWorkerService } from '../workers/service.js';
import { aggregateDayWorkflow } from '../workflows/aggregate.js';
import { scheduledAggregationWorkflow } from '../workflows/scheduled.js';
import { expectedLines, insertRawEventDay, rawEventDay } from './raw-event-day.js';
import { writeBenchmarkSection } from './results.js';

const { values: args } = parseArgs({ options: { events: { type: 'string', default: '10000000' }, customers: { type: 'string', default: '1000' }, farm: { type: 'boolean', default: false } } });
const rows = Number(args.events);
const customers = Number(args.customers);
/** Rows per DML job: each job moves the progress bar. */
const LOAD_CHUNK_ROWS = 2_000_000;

/**
 * A pass-through to the emulator that counts the jobs (query, DML, load) requests start, and adds
 * up the time requests take: the BigQuery share of a phase whose requests come one at a time.
 */
async function countingProxy(target: string): Promise<{ url: string; jobs: () => number; busySeconds: () => number; close(): Promise<void> }> {
  let jobs = 0;
  let busyMs = 0;
  const server = http.createServer((req, res) => {
    const start = performance.now();
    res.on('close', () => (busyMs += performance.now() - start));
    // jobs.insert (POST …/jobs) and jobs.query (POST …/queries) start a job; polls and reads do not.
    if (req.method === 'POST' && /\/projects\/[^/]+\/(jobs|queries)(\?|$)/.test(req.url ?? '')) jobs++;
    const upstream = http.request(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', (err) => res.destroy(err));
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    jobs: () => jobs,
    busySeconds: () => busyMs / 1000,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc: the emulator's share of a phase. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** The emulator's process: the one started with `--rest-port <port>`. */
function emulatorPid(apiEndpoint: string): number {
  const port = new URL(apiEndpoint).port;
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.endsWith('bqemulator')) && argv[argv.indexOf('--rest-port') + 1] === port) return Number(pid);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no bqemulator process with --rest-port ${port}`);
}

/**
 * Whether the emulator's Python can import pandas. DuckDB 1.5.5 tries `import pandas` twice in
 * every call of a Python UDF (bqemulator's FARM_FINGERPRINT is one): without pandas each row pays
 * two failed imports. Tally's query calls none since its checksum moved to MD5; the reference
 * row below still does.
 */
function emulatorImportsPandas(): boolean {
  try {
    execFileSync(path.join(venvBin, 'python'), ['-c', 'import pandas'], { env: { ...process.env, HOME: bqEmulatorHome }, stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const loadAverage = () => os.loadavg().map((l) => l.toFixed(2)).join(', ');
const lineKey = (instance: string, amountType: string) => `${instance}\u0000${amountType}`;

/** Throws unless the lines are equal one for one: total, event count and (when both have it) checksum. */
function assertSameLines(what: string, got: Map<string, { total: string; eventCount: number; keyChecksum?: string }>, want: Map<string, { total: string; eventCount: number; keyChecksum?: string }>): void {
  const wrong = [...want].filter(([key, w]) => {
    const g = got.get(key);
    return !g || g.total !== w.total || g.eventCount !== w.eventCount || (g.keyChecksum !== undefined && w.keyChecksum !== undefined && g.keyChecksum !== w.keyChecksum);
  });
  if (wrong.length > 0 || got.size !== want.size) {
    throw new Error(`${what}: ${got.size} lines where ${want.size} were expected, ${wrong.length} differ (first: ${JSON.stringify(wrong[0]?.[0])})`);
  }
}

interface Phase<T> { result: T; seconds: number; jobs: number; bigquerySeconds: number; emulatorCpu: number; ownCpu: number }

const cpus = os.cpus();
const loadAtStart = loadAverage();
const pandas = emulatorImportsPandas();
const dataDir = path.join(projectRoot, '.data', `bench-aggregate-${process.pid}`);
fs.mkdirSync(dataDir, { recursive: true, mode: 0o755 });
const stack = await startLocalStack({ dataDir, persistent: false, ports: 'free' });
const emulator = emulatorPid(stack.env.BIGQUERY_API_ENDPOINT!);
const proxy = await countingProxy(stack.env.BIGQUERY_API_ENDPOINT!);
const config = loadConfig({ ...stack.env, BIGQUERY_API_ENDPOINT: proxy.url, LOG_LEVEL: 'warn', WORKER_METRICS_PORT: '0', FORWARD_ENABLED: 'false' });
const db = createPool(config.DATABASE_URL, 2);
const worker = await startWorkerService(config, createLogger('warn', 'bench-worker'));
const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
const bar = new SingleBar({ format: '  load [{bar}] {value}/{total} rows, {duration}s', hideCursor: true }, undefined);

/** Runs one measured step: wall time, BigQuery jobs and request time, the emulator's CPU and this process's (bench + worker). */
async function phase<T>(label: string, run: () => Promise<T>): Promise<Phase<T>> {
  process.stderr.write(`  ${label}…`);
  const before = { jobs: proxy.jobs(), busy: proxy.busySeconds(), emulatorCpu: cpuSeconds(emulator), ownCpu: process.cpuUsage() };
  const start = performance.now();
  const result = await run();
  const seconds = (performance.now() - start) / 1000;
  const own = process.cpuUsage(before.ownCpu);
  const measured = {
    result, seconds, jobs: proxy.jobs() - before.jobs, bigquerySeconds: proxy.busySeconds() - before.busy,
    emulatorCpu: cpuSeconds(emulator) - before.emulatorCpu, ownCpu: (own.user + own.system) / 1e6,
  };
  process.stderr.write(` ${seconds.toFixed(1)} s, ${measured.jobs} BigQuery jobs, emulator CPU ${measured.emulatorCpu.toFixed(1)} s\n`);
  return measured;
}

try {
  const bigquery = createBigQuery({ projectId: config.BIGQUERY_PROJECT, apiEndpoint: proxy.url });
  const rawEvents = new RawEventStore(bigquery, config.BIGQUERY_DATASET, config.BIGQUERY_EVENTS_TABLE);
  const taskQueue = config.TEMPORAL_TASK_QUEUE;
  // Only what is measured runs: no Schedule fires in the middle of a phase.
  for (const id of worker.schedules) await temporal.schedule.getHandle(id).pause('aggregation benchmark');
  const day = billingDayOf(Date.now());
  const plan = rawEventDay(day, rows, customers, [...config.amountTypes.keys()]);
  const pandasNote = pandas ? `imports pandas${process.env.PYTHONPATH ? ` (PYTHONPATH=${process.env.PYTHONPATH})` : ''}` : 'cannot import pandas';
  process.stderr.write(`Aggregation benchmark: ${fmt(rows)} raw rows for ${day} (${fmt(plan.duplicates)} duplicate copies), ${fmt(customers)} customers, ${cpus.length} cores, load average ${loadAtStart}; the emulator's Python ${pandasNote}\n`);

  // The state the hourly runs leave behind: the days due to close are closed (they are empty here).
  const settle = await phase('settle: one scheduled aggregation before the load', () =>
    temporal.workflow.execute(scheduledAggregationWorkflow, { workflowId: 'bench-aggregation-settle', taskQueue, args: [] }));

  bar.start(rows, 0);
  const started = performance.now();
  await insertRawEventDay(bigquery, rawEvents.tableRef, plan, LOAD_CHUNK_ROWS, (done) => bar.update(done));
  const loadSeconds = (performance.now() - started) / 1000;
  bar.stop();
  const stored = await rawEvents.countRows(day);
  if (stored.rows !== rows || stored.distinctInsertIds !== plan.distinct) throw new Error(`loaded ${JSON.stringify(stored)}, expected ${rows} rows and ${plan.distinct} insert ids`);

  // Baseline: the same SQL as Tally's, alone, checked against the generator's own totals and counts.
  const baseline = await phase('baseline: dailyUsage(day)', () => rawEvents.dailyUsage(day));
  const baselineLines = new Map(baseline.result.map((l: DailyUsageLine) => [lineKey(l.internalInstanceId, l.amountType), l]));
  const generated = new Map([...expectedLines(plan)].map(([key, l]) => [key, { total: String(l.total), eventCount: l.eventCount }]));
  assertSameLines('the baseline query against the generated rows', baselineLines, generated);
  // The key checksum's share: its MD5 fingerprint over every row, alone; and FARM_FINGERPRINT (the checksum before, a
  // Python UDF in the emulator) when asked, since without pandas it takes minutes per million rows.
  const fingerprints = await phase('reference: the checksum of every row', () =>
    bigquery.query({ query: `SELECT BIT_XOR(${KEY_FINGERPRINT}) AS x FROM ${rawEvents.tableRef} WHERE event_date = @day`, params: { day: bigquery.date(day) } }));
  const farm = args.farm ? await phase('reference: FARM_FINGERPRINT of every row', () =>
    bigquery.query({ query: `SELECT BIT_XOR(FARM_FINGERPRINT(insert_id)) AS x FROM ${rawEvents.tableRef} WHERE event_date = @day`, params: { day: bigquery.date(day) } })) : null;

  const tally = await phase(`Tally: aggregate-${day}`, () =>
    temporal.workflow.execute(aggregateDayWorkflow, { workflowId: `aggregate-${day}`, taskQueue, args: [day] }));
  const inPostgres = (await db.query<{ internal_instance_id: string; amount_type: string; total: string; event_count: number; key_checksum: string }>(
    'SELECT internal_instance_id, amount_type, total::text, event_count, key_checksum FROM usage_daily WHERE billing_day = $1', [day],
  )).rows;
  assertSameLines('usage_daily against the baseline', new Map(inPostgres.map((r) => [lineKey(r.internal_instance_id, r.amount_type), { total: r.total, eventCount: r.event_count, keyChecksum: r.key_checksum }])), baselineLines);

  // No new events since: nothing is marked dirty (the rows came by DML, not through ingest's drainer).
  const dirty = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM dirty_days')).rows[0]!.n;
  const rerun = await phase('re-run: scheduled aggregation, no new events', () =>
    temporal.workflow.execute(scheduledAggregationWorkflow, { workflowId: 'bench-aggregation-rerun', taskQueue, args: [] }));
  const loadAtEnd = loadAverage();

  const rate = (secs: number) => fmt(rows / secs);
  const row = (label: string, p: Phase<unknown>, withRate = true) =>
    `| ${label} | ${p.seconds.toFixed(p.seconds < 10 ? 2 : 1)} | ${withRate ? rate(p.seconds) : ''} | ${p.jobs} | ${p.bigquerySeconds.toFixed(1)} | ${p.emulatorCpu.toFixed(1)} | ${p.ownCpu.toFixed(1)} |`;
  const section = [
    '## Aggregation (`npm run bench:aggregate`)',
    '',
    `Run ${new Date().toISOString()} on ${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}; load average (1, 5, 15 min) ${loadAtStart} at the start, ${loadAtEnd} at the end, other work sharing the machine.`,
    `${fmt(rows)} raw rows for ${day}: ${fmt(plan.distinct)} insert ids (two amount types per event, all four per customer) and ${fmt(plan.duplicates)} duplicate copies received a minute after the first, as a retried streaming insert leaves them; ${fmt(customers)} customers, ${fmt(baselineLines.size)} usage lines.`,
    `BigQuery emulator: bqemulator 1.4.0 on DuckDB 1.5.5, in memory; its Python ${pandasNote}.`,
    '',
    `Load: ${fmt(rows)} rows in ${loadSeconds.toFixed(1)} s (${rate(loadSeconds)} rows/s) by ${Math.ceil(rows / LOAD_CHUNK_ROWS)} DML query job(s) \`INSERT … SELECT … FROM UNNEST(GENERATE_ARRAY(…))\` of up to ${fmt(LOAD_CHUNK_ROWS)} rows, generated inside the emulator.`,
    '',
    '| run | seconds | rows/s | BigQuery jobs | in BigQuery requests, s | emulator CPU s | worker + bench CPU s |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('baseline: `dailyUsage(day)` alone', baseline),
    row(`Tally: \`aggregate-${day}\` workflow into usage_daily`, tally),
    row(`Tally: hourly scheduled aggregation, no new events (${dirty} dirty marks, ${rerun.result.length} days visited)`, rerun, false),
    row('reference: the key checksum `BIT_XOR(MD5 fingerprint)` over every row, alone', fingerprints),
    ...(farm ? [row('reference: `BIT_XOR(FARM_FINGERPRINT(insert_id))` (the checksum before) over every row, alone', farm)] : []),
    '',
    `Ratio Tally / baseline: **${(baseline.seconds / tally.seconds).toFixed(2)}**. Targets: Tally ≤ 60 s (${tally.seconds <= 60 ? 'met' : 'missed'}); no BigQuery job on the re-run (${rerun.jobs === 0 ? 'met' : `missed: ${rerun.jobs}`}).`,
    `usage_daily equals the baseline line for line (total, event count, key checksum), and the baseline equals the generator's own totals and counts. BigQuery jobs and request time are counted by a proxy in front of the emulator (POST …/jobs and …/queries start a job). Before the load, one scheduled run settled the ${settle.result.length} day(s) due to close (${settle.jobs} BigQuery job(s) on empty partitions), as earlier hourly runs would have.`,
    `Where the time goes: of Tally's ${tally.seconds.toFixed(1)} s, ${tally.bigquerySeconds.toFixed(1)} s are the BigQuery query and ${(tally.seconds - tally.bigquerySeconds).toFixed(1)} s Temporal, the worker and the Postgres transaction of ${fmt(baselineLines.size)} lines. The key checksum alone takes ${fingerprints.seconds.toFixed(1)} s of the baseline's ${baseline.seconds.toFixed(1)} s.`,
    '',
  ].join('\n');
  process.stderr.write(`\n${section}\n`);
  writeBenchmarkSection('Aggregation', section);
} finally {
  bar.stop();
  await connection.close();
  await worker.stop();
  await db.end();
  await proxy.close();
  await stack.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
