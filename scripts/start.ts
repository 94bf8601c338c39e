// `npm start`: the whole of Tally on embedded defaults, data kept in .data/local across restarts.
// Any piece given from outside (TEMPORAL_ADDRESS, DATABASE_URL, BIGQUERY_API_ENDPOINT, ZUORA_BASE_URL) is used instead.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ApiKeys } from '../api/api-keys.js';
import { createPool } from '../db/pool.js';
import { startApiService } from '../api/service.js';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { startLocalStack } from '../devstack/index.js';
import { projectRoot } from '../devstack/tools.js';
import { startWorkerService } from '../workers/service.js';
import { buildZuoraSandbox } from '../zuora-sandbox/server.js';

const env = process.env;
loadConfig(env); // a bad value stops us here, before anything starts
const dataDir = path.join(projectRoot, '.data', 'local');
const logger = createLogger(env.LOG_LEVEL ?? 'info', 'tally');

const stops: (() => Promise<void>)[] = [];
let stopping = false;
async function stopAll(code: number): Promise<void> {
  if (stopping) return;
  {
    stopping = true;
    process.stderr.write('\nStopping Tally…\n');
    for (const stop of stops.reverse()) await stop().catch((err) => logger.error({ err }, 'stop failed'));
    process.stderr.write('Stopped.\n');
  }
  process.exit(code);
}
// `on`, not `once`: Ctrl-C reaches both tsx and this process, and a second signal must not cut the orderly stop short.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void stopAll(0));

try {
  process.stderr.write('Starting Tally (first start installs and initialises; later ones take seconds)…\n');
  const stack = await startLocalStack({
    dataDir,
    persistent: true,
    ports: 'default',
    external: {
      TEMPORAL_ADDRESS: env.TEMPORAL_ADDRESS,
      DATABASE_URL: env.DATABASE_URL,
      BIGQUERY_API_ENDPOINT: env.BIGQUERY_API_ENDPOINT,
      BIGQUERY_PROJECT: env.BIGQUERY_PROJECT,
    },
  });
  stops.push(stack.stop);
  const places = [...stack.places];

  const sandboxEnv: Record<string, string> = {};
  if (env.ZUORA_BASE_URL === undefined) {
    const port = Number(env.ZUORA_SANDBOX_PORT ?? 8070);
    const sandbox = await buildZuoraSandbox({
      clientId: env.ZUORA_CLIENT_ID ?? 'tally-local',
      clientSecret: env.ZUORA_CLIENT_SECRET ?? 'tally-local-secret',
      dataFile: path.join(dataDir, 'zuora-sandbox.json'),
    });
    await sandbox.listen({ host: '127.0.0.1', port });
    stops.push(() => sandbox.close());
    sandboxEnv.ZUORA_BASE_URL = `http://127.0.0.1:${port}`;
    places.push({ name: 'Zuora sandbox', where: `${sandboxEnv.ZUORA_BASE_URL} (all usage: /sandbox/usage)` });
  }

  const adminToken = env.ADMIN_TOKEN || devAdminToken();
  const config = loadConfig({ ...env, ...stack.env, ...sandboxEnv, ADMIN_TOKEN: adminToken });
  const worker = await startWorkerService(config, createLogger(config.LOG_LEVEL, 'tally-worker'));
  stops.push(worker.stop);
  const api = await startApiService(config, createLogger(config.LOG_LEVEL, 'tally-api'));
  stops.push(api.stop);
  const devKey = await ensureDevApiKey(config.DATABASE_URL);
  places.push(
    { name: 'Producer API key', where: `${devKey} (in .data/local/dev-api-key)` },
    { name: 'Operator token', where: env.ADMIN_TOKEN ? '(ADMIN_TOKEN from the environment)' : `${adminToken} (in .data/local/admin-token)` },
    { name: 'Worker metrics', where: worker.metricsUrl },
    { name: 'API', where: api.url },
    { name: 'API metrics', where: `${api.url}/metrics` },
    ...(api.forwardAddress ? [{ name: 'Fluentd forward', where: `${api.forwardAddress} (point the Go client's -billing.ingester here)` }] : []),
    { name: 'Admin UI', where: `${api.url}/admin/ui/ (sign in with the operator token)` },
    { name: 'API docs', where: `${api.url}/docs (OpenAPI document: ${api.url}/openapi.json)` },
    { name: 'Schedules', where: `${worker.schedules.join(', ')} (${config.TEMPORAL_UI_URL}/namespaces/${config.TEMPORAL_NAMESPACE}/schedules)` },
    { name: 'Data and logs', where: dataDir },
  );
  const width = Math.max(...places.map((p) => p.name.length));
  process.stderr.write(`\nTally is up.\n${places.map((p) => `  ${p.name.padEnd(width)}  ${p.where}`).join('\n')}\n\nCtrl-C stops everything.\n\n`);
} catch (err) {
  logger.error({ err }, 'Tally failed to start');
  await stopAll(1);
}

/** The operators' token for local use (ADMIN_TOKEN), made once and kept so the README's curl works across restarts. */
function devAdminToken(): string {
  const file = path.join(dataDir, 'admin-token');
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  const token = `tally_admin_${randomBytes(24).toString('base64url')}`;
  fs.mkdirSync(dataDir, { recursive: true });
  fs.writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}

/** A producer key for local use, kept in a file so the README's curl works across restarts. */
async function ensureDevApiKey(databaseUrl: string): Promise<string> {
  const file = path.join(dataDir, 'dev-api-key');
  const db = createPool(databaseUrl, 1);
  try {
    const keys = new ApiKeys(db);
    const existing = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : '';
    if (existing && (await keys.check(`Bearer ${existing}`, 'ingest')).ok) return existing;
    const { key } = await keys.issue('local development (npm start)', ['ingest']);
    fs.writeFileSync(file, `${key}\n`, { mode: 0o600 });
    return key;
  } finally {
    await db.end();
  }
}
