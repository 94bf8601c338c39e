// Upload benchmark: 100,000 organisation-days (1,000 organisations × 100 days, one amount type)
// sent to a Zuora sandbox. Baseline, same run: the same CSV files posted straight to a second
// sandbox and polled to completion, with no Temporal, ledger or planning. Writes docs/benchmarks.md.
//   npm run bench:upload -- [--orgs 1000] [--days 100] [--concurrency 4]
import { Client, Connection } from '@temporalio/client';
import { SingleBar } from 'cli-progress';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'csv-stringify/sync';
import type { FastifyInstance } from 'fastify';
import { usageUniqueKey } from '../activities/upload.js';
import { ZuoraClient } from '../activities/zuora-client.js';
import { addDays, type BillingDay } from '../core/billing-day.js';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { createPool } from '../db/pool.js';
import { startLocalStack } from '../devstack/index.js';
import { projectRoot } from '../devstack/tools.js';
import { startWorkerService } from '../workers/service.js';
import { uploadDayWorkflow } from '../workflows/upload.js';
import { buildZuoraSandbox } from '../zuora-sandbox/server.js';
import { writeBenchmarkSection } from './results.js';

const { values: args } = parseArgs({ options: { orgs: { type: 'string', default: '1000' }, days: { type: 'string', default: '100' }, concurrency: { type: 'string', default: '4' } } });
const orgs = Number(args.orgs);
const days = Number(args.days);
const concurrency = Number(args.concurrency);
const firstDay = '2026-01-01' as BillingDay;
const dayList = Array.from({ length: days }, (_, i) => addDays(firstDay, i));

async function sandbox(): Promise<{ app: FastifyInstance; url: string; requests: () => number }> {
  const app = await buildZuoraSandbox({ clientId: 'bench', clientSecret: 'bench-secret', importStepMs: 5, rateLimit: { requestsPerWindow: 1_000_000, windowMs: 60_000 } });
  let count = 0;
  app.addHook('onRequest', async () => void count++);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  return { app, url: `http://127.0.0.1:${port}`, requests: () => count };
}

async function inParallel<T>(items: T[], limit: number, each: (item: T) => Promise<void>, bar: SingleBar): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    for (let i = next++; i < items.length; i = next++) {
      await each(items[i]!);
      bar.increment();
    }
  }));
}

const dataDir = path.join(projectRoot, '.data', `bench-upload-${process.pid}`);
fs.mkdirSync(dataDir, { recursive: true, mode: 0o755 });
const stack = await startLocalStack({ dataDir, persistent: false, ports: 'free' });
const tallyZuora = await sandbox();
const baselineZuora = await sandbox();
const config = loadConfig({
  ...stack.env, ZUORA_BASE_URL: tallyZuora.url, ZUORA_CLIENT_ID: 'bench', ZUORA_CLIENT_SECRET: 'bench-secret',
  ZUORA_IMPORT_POLL_MS: '50', ZUORA_MAX_REQUESTS_PER_SECOND: '1000', LOG_LEVEL: 'warn', WORKER_METRICS_PORT: '0', FORWARD_ENABLED: 'false',
});
const db = createPool(config.DATABASE_URL, 4);
const worker = await startWorkerService(config, createLogger('warn', 'bench-worker'));
const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
const temporal = new Client({ connection });
try {
  // Organisations with an account in each sandbox (numbered alike: A00000001, …), and their usage.
  const tallyClient = new ZuoraClient({ baseUrl: tallyZuora.url, clientId: 'bench', clientSecret: 'bench-secret' });
  const baselineClient = new ZuoraClient({ baseUrl: baselineZuora.url, clientId: 'bench', clientSecret: 'bench-secret' });
  const contact = { firstName: 'Bench', lastName: 'Org' };
  for (let n = 0; n < orgs; n++) {
    const account = await tallyClient.createAccount({ name: `Bench ${n}`, currency: 'USD', billCycleDay: 1, contact }, `bench-${n}`);
    await baselineClient.createAccount({ name: `Bench ${n}`, currency: 'USD', billCycleDay: 1, contact }, `bench-${n}`);
    await db.query('INSERT INTO organisations (id, name, internal_instance_id, zuora_account_number) VALUES ($1, $1, $2, $3)', [`bench-${n}`, `bench-inst-${n}`, account.accountNumber]);
  }
  await db.query(
    `INSERT INTO usage_daily (internal_instance_id, billing_day, amount_type, total, event_count, key_checksum)
     SELECT 'bench-inst-' || n, $1::date + d, 'container-seconds', 3600 + n + d, 1, '0'
     FROM generate_series(0, $2 - 1) AS n, generate_series(0, $3 - 1) AS d`,
    [firstDay, orgs, days],
  );
  // Settled and closed, as the aggregation leaves them: only closed days upload.
  await db.query('INSERT INTO closed_days (billing_day) SELECT $1::date + d FROM generate_series(0, $2 - 1) AS d', [firstDay, days]);
  process.stderr.write(`Upload benchmark: ${orgs} organisations × ${days} days = ${(orgs * days).toLocaleString('en-US')} organisation-days\n`);

  // Baseline: the same records as one CSV per day, posted and polled directly.
  const accounts = (await db.query<{ id: string; zuora_account_number: string }>('SELECT id, zuora_account_number FROM organisations ORDER BY id')).rows;
  const files = new Map(dayList.map((day) => {
    const date = `${day.slice(5, 7)}/${day.slice(8, 10)}/${day.slice(0, 4)}`;
    const rows = accounts.map((a) => [a.zuora_account_number, 'CONTAINER_SECONDS', String(3600 + Number(a.id.slice(6)) + dayList.indexOf(day)), date, date, '', '', `container-seconds on ${day}`, usageUniqueKey(a.id, day, 'container-seconds')]);
    return [day, stringify(rows, { header: true, columns: ['ACCOUNT_ID', 'UOM', 'QTY', 'STARTDATE', 'ENDDATE', 'SUBSCRIPTION_ID', 'CHARGE_ID', 'DESCRIPTION', 'UNIQUE_KEY'] })];
  }));
  const bar = new SingleBar({ format: '  {task} [{bar}] {value}/{total} days', hideCursor: true }, undefined);
  const baselineRequestsBefore = baselineZuora.requests();
  bar.start(days, 0, { task: 'baseline' });
  let started = performance.now();
  await inParallel(dayList, concurrency, async (day) => {
    const { importId } = await baselineClient.importUsage(files.get(day)!, `${day}.csv`);
    while ((await baselineClient.importStatus(importId)).status !== 'Completed') await new Promise((r) => setTimeout(r, 50));
  }, bar);
  const baselineSeconds = (performance.now() - started) / 1000;
  bar.stop();
  const baselineRequests = baselineZuora.requests() - baselineRequestsBefore;

  const tallyRequestsBefore = tallyZuora.requests();
  bar.start(days, 0, { task: 'tally   ' });
  started = performance.now();
  await inParallel(dayList, concurrency, async (day) => {
    const result = await temporal.workflow.execute(uploadDayWorkflow, { workflowId: `upload-${day}`, taskQueue: config.TEMPORAL_TASK_QUEUE, args: [day] });
    if (result.status !== 'Completed' || result.records !== orgs) throw new Error(`upload of ${day}: ${JSON.stringify(result)}`);
  }, bar);
  const tallySeconds = (performance.now() - started) / 1000;
  bar.stop();
  const tallyRequests = tallyZuora.requests() - tallyRequestsBefore;
  const imports = (await db.query<{ n: number; bytes: number }>("SELECT count(*)::int AS n FROM upload_ledger_imports WHERE status = 'completed'")).rows[0]!;
  const held = ((await tallyZuora.app.inject({ method: 'GET', url: '/sandbox/usage' })).json() as { usage: unknown[] }).usage.length;
  if (held !== orgs * days) throw new Error(`the sandbox holds ${held} records, not ${orgs * days}`);
  const bytesPerFile = Math.round([...files.values()].reduce((n, f) => n + Buffer.byteLength(f), 0) / files.size);

  const orgDays = orgs * days;
  const section = [
    '## Upload to Zuora (`npm run bench:upload`)',
    '',
    `Run ${new Date().toISOString()} on ${os.cpus().length} cores, Node ${process.version}: ${orgs.toLocaleString('en-US')} organisations × ${days} days = ${orgDays.toLocaleString('en-US')} organisation-days, one amount type, ${concurrency} days at a time, into the Zuora sandbox (in process, import steps of 5 ms).`,
    '',
    '| run | seconds | organisation-days/s | files | Zuora requests | requests per file | bytes per file |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    `| baseline: the same CSVs posted and polled directly | ${baselineSeconds.toFixed(1)} | ${Math.round(orgDays / baselineSeconds).toLocaleString('en-US')} | ${days} | ${baselineRequests} | ${(baselineRequests / days).toFixed(1)} | ${bytesPerFile.toLocaleString('en-US')} |`,
    `| Tally: upload-<day> workflows (plan, ledger, history, rate-limited Zuora queue) | ${tallySeconds.toFixed(1)} | ${Math.round(orgDays / tallySeconds).toLocaleString('en-US')} | ${imports.n} | ${tallyRequests} | ${(tallyRequests / imports.n).toFixed(1)} | ${bytesPerFile.toLocaleString('en-US')} |`,
    '',
    `Ratio Tally / baseline: **${(baselineSeconds / tallySeconds).toFixed(2)}**. The sandbox holds ${held.toLocaleString('en-US')} records afterwards: one per organisation-day. Requests per file count the token, the upload and the status polls.`,
    '',
  ].join('\n');
  process.stderr.write(`\n${section}\n`);
  writeBenchmarkSection('Upload to Zuora', section);
} finally {
  await connection.close();
  await worker.stop();
  await db.end();
  await tallyZuora.app.close();
  await baselineZuora.app.close();
  await stack.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
