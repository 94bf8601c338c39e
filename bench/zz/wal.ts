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
import pg from 'pg';
const dataDir = path.join(projectRoot, '.data', `zz-${process.pid}`);
fs.mkdirSync(dataDir, { recursive: true, mode: 0o755 });
const stack = await startLocalStack({ dataDir, persistent: false, ports: 'free', emulatorNiceness: 19 });
const db = new pg.Client({ connectionString: stack.env.DATABASE_URL });
await db.connect();
await db.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect');
const adminToken = 'zz-' + randomBytes(8).toString('hex');
const env = { ...process.env, ...stack.env, ADMIN_TOKEN: adminToken, LOG_LEVEL: 'warn', WORKER_METRICS_PORT: String(await freePort()), FORWARD_PORT: String(await freePort()) };
const apiPort = await freePort();
const tsx = path.join(projectRoot, 'node_modules', '.bin', 'tsx');
const logs = fs.openSync(path.join(dataDir, 'children.log'), 'a');
const api = spawn(tsx, ['api/main.ts'], { cwd: projectRoot, env: { ...env, API_PORT: String(apiPort), API_PROCESSES: '2' }, stdio: ['ignore', logs, logs] });
const url = `http://127.0.0.1:${apiPort}`;
for (let i = 0; i < 300; i++) { if (await fetch(url + '/healthz').then((r) => r.ok, () => false)) break; await new Promise((r) => setTimeout(r, 200)); }
const issued = await fetch(url + '/admin/api-keys', { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` }, body: JSON.stringify({ name: 'zz', scopes: ['ingest'] }) });
const headers = { 'content-type': 'application/json', authorization: `Bearer ${(await issued.json()).key}` };
function bodies(label, count) {
  const day = billingDayOf(Date.now());
  const prefix = `${label}-${randomBytes(4).toString('hex')}`;
  return Array.from({ length: count }, (_, r) => Buffer.from(JSON.stringify({ events: Array.from({ length: 500 }, (_, i) => ({
    uniqueKey: `${prefix}-${r}-${i}`, internalInstanceId: `bench-instance-${i % 50}`, timestamp: `${day}T00:${String(i % 60).padStart(2, '0')}:00Z`,
    amounts: { 'container-seconds': 1 + (i % 3600), 'node-seconds': 60 }, metadata: { service: 'bench' } })) })));
}
await closedLoad({ url, path: '/v1/events', greeting: '/healthz', headers, bodies: bodies('w', 600), requests: 600, connections: 16 });
await db.query('CHECKPOINT');
const a = (await db.query('SELECT pg_current_wal_lsn() AS l')).rows[0].l;
await closedLoad({ url, path: '/v1/events', greeting: '/healthz', headers, bodies: bodies('m', 300), requests: 300, connections: 4 });
const b = (await db.query('SELECT pg_current_wal_lsn() AS l')).rows[0].l;
const { rows } = await db.query(`SELECT "resource_manager/record_type" AS t, count, round(combined_size/300.0) AS bytes_per_batch, round(fpi_size/300.0) AS fpi_per_batch FROM pg_get_wal_stats($1, $2, true) WHERE count > 0 ORDER BY combined_size DESC LIMIT 15`, [a, b]);
console.table(rows);
const tot = (await db.query(`SELECT pg_wal_lsn_diff($2, $1) / 300 AS per`, [a, b])).rows[0];
console.log('WAL per batch', tot);
console.table((await db.query(`SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relname LIKE 'event_keys%' OR relname LIKE 'ingest_batches%' OR relname like 'pg_toast%' ORDER BY 2 DESC LIMIT 8`)).rows);
console.table((await db.query(`SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a JOIN pg_class c ON c.oid=a.attrelid WHERE c.relname IN ('event_keys','ingest_batches') AND a.attnum > 0 AND NOT a.attisdropped`)).rows);
api.kill('SIGTERM');
await new Promise((r) => api.once('exit', r));
await db.end(); await stack.stop();
fs.rmSync(dataDir, { recursive: true, force: true });
