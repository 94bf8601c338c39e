// @ts-nocheck
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startLocalStack } from '../../devstack/index.js';
import { freePort } from '../../devstack/process.js';
import { projectRoot } from '../../devstack/tools.js';
import { billingDayOf } from '../../core/billing-day.js';
import { closedLoad } from '../closed-load.js';
import { pacedLoad } from '../paced-load.js';
import pg from 'pg';

const RATE = Number(process.env.RATE ?? 100);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const profDir = process.env.PROF_DIR ?? '/tmp/zz/prof';
fs.mkdirSync(profDir, { recursive: true });
const dataDir = path.join(projectRoot, '.data', `zz-${process.pid}`);
fs.mkdirSync(dataDir, { recursive: true, mode: 0o755 });
const stack = await startLocalStack({ dataDir, persistent: false, ports: 'free', emulatorNiceness: 19, emulatorCpuGroup: true });
const group = stack.emulatorCpuGroup;
const db = new pg.Client({ connectionString: stack.env.DATABASE_URL });
await db.connect();
const adminToken = 'zz-' + randomBytes(8).toString('hex');
const env = { ...process.env, ...stack.env, ADMIN_TOKEN: adminToken, LOG_LEVEL: 'warn', WORKER_METRICS_PORT: String(await freePort()), FORWARD_PORT: String(await freePort()) };
const apiPort = await freePort();
const tsx = path.join(projectRoot, 'node_modules', '.bin', 'tsx');
const logs = fs.openSync(path.join(dataDir, 'children.log'), 'a');
const worker = spawn(tsx, ['workers/main.ts'], { cwd: projectRoot, env, stdio: ['ignore', logs, logs] });
const prof = process.env.NOPROF ? [] : ['--cpu-prof', '--cpu-prof-dir', profDir];
const api = spawn(tsx, [...prof, 'api/main.ts'], { cwd: projectRoot, env: { ...env, API_PORT: String(apiPort), API_PROCESSES: process.env.API_PROCESSES ?? '2' }, stdio: ['ignore', logs, logs] });
const url = `http://127.0.0.1:${apiPort}`;
for (let i = 0; i < 300; i++) { if (await fetch(url + '/healthz').then((r) => r.ok, () => false)) break; await new Promise((r) => setTimeout(r, 200)); }
for (let i = 0; i < 300; i++) { if (await fetch(`http://127.0.0.1:${env.WORKER_METRICS_PORT}/metrics`).then((r) => r.ok, () => false)) break; await new Promise((r) => setTimeout(r, 200)); }
const issued = await fetch(url + '/admin/api-keys', { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` }, body: JSON.stringify({ name: 'zz', scopes: ['ingest'] }) });
const authorization = `Bearer ${(await issued.json()).key}`;
const headers = { 'content-type': 'application/json', authorization };
function bodies(label, count) {
  const day = billingDayOf(Date.now());
  const prefix = `${label}-${randomBytes(4).toString('hex')}`;
  return Array.from({ length: count }, (_, r) => Buffer.from(JSON.stringify({ events: Array.from({ length: 500 }, (_, i) => ({
    uniqueKey: `${prefix}-${r}-${i}`, internalInstanceId: `bench-instance-${i % 50}`, timestamp: `${day}T00:${String(i % 60).padStart(2, '0')}:00Z`,
    amounts: { 'container-seconds': 1 + (i % 3600), 'node-seconds': 60 }, metadata: { service: 'bench' } })) })));
}
async function drained() { for (;;) { const { rows } = await db.query('SELECT count(*)::int AS n FROM ingest_batches WHERE written_at IS NULL'); if (rows[0].n === 0) return; await new Promise((r) => setTimeout(r, 200)); } }
const full = await closedLoad({ url, path: '/v1/events', greeting: '/healthz', headers, bodies: bodies('w', 600), requests: 600, connections: 16 });
console.error(`full speed ${(full.ok / full.seconds).toFixed(1)} req/s`);
await drained(); await db.query('CHECKPOINT');
for (let r = 0; r < ROUNDS; r++) {
  if (group && !group.unavailable && !process.env.UNCAPPED) group.limit(0.25);
  const before = fs.readFileSync(`/proc/${api.pid}/stat`, 'utf8');
  const run = await pacedLoad({ url, path: '/v1/events', greeting: '/healthz', headers, bodies: bodies('h' + r, 1800 + RATE), rate: RATE, requests: 1800, connections: 16, warmup: RATE });
  fs.writeFileSync(`/tmp/zz/timeline-${r}.json`, JSON.stringify({ countedFrom: run.countedFrom.getTime(), timeline: run.timeline }));
  console.error(`half ${r}: from ${run.countedFrom.toISOString()} p50 ${run.p50} p99 ${run.p99} max ${run.max} slowest ${run.slowest.map((s) => `${(s.at / 1000).toFixed(1)}s:${s.ms}`).join(' ')}`);
  if (group && !group.unavailable) group.limit(null);
  await drained(); await db.query('CHECKPOINT');
}
api.kill('SIGTERM'); worker.kill('SIGTERM');
await Promise.all([api, worker].map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
await db.end(); await stack.stop();
if (!process.env.KEEP) fs.rmSync(dataDir, { recursive: true, force: true }); else console.error(dataDir);
console.error('done');
