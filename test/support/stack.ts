import { Client, Connection } from '@temporalio/client';
import { rawEventStoreFrom, zuoraClientFrom } from '../../activities/clients.js';
import { NativeConnection, type Worker } from '@temporalio/worker';
import './quiet-runtime.js';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { expect, inject } from 'vitest';
import { eventually } from './eventually.js';
import { activityDeps, createActivities } from '../../activities/index.js';
import { RawEventStore } from '../../activities/raw-events.js';
import { ZuoraClient } from '../../activities/zuora-client.js';
import { buildApp } from '../../api/app.js';
import { loadConfig, type Config } from '../../core/config.js';
import { migrate } from '../../db/migrate.js';
import { createPool } from '../../db/pool.js';
import { createTallyWorker, createZuoraWorker } from '../../workers/worker.js';
import { zuoraTaskQueue } from '../../core/task-queues.js';
import { ensureIngestDrainer } from '../../workers/ingest-drainer.js';
import { TemporalHealth } from '../../api/temporal-health.js';
import { ingestDrainerWorkflowId } from '../../core/ingest-drainer.js';


/**
 * A test file's own slice of the shared stack: its own Postgres database, BigQuery dataset and
 * Temporal task queue, so files running side by side never see each other's data.
 */
export interface TestTally {
  config: Config;
  db: pg.Pool;
  rawEvents: RawEventStore;
  temporal: Client;
  zuora: ZuoraClient;
  app: Awaited<ReturnType<typeof buildApp>>;
  worker: Worker;
  /** Headers bearing a live producer API key with the ingest scope. */
  auth: { authorization: string };
  /** Headers bearing the operators' ADMIN_TOKEN, which every /admin route needs. */
  adminAuth: { authorization: string };
  /** Headers bearing a fresh billing API token of the organisation (issued through the DB, not HTTP). */
  orgAuth(orgId: string): Promise<{ authorization: string }>;
  /** Stops the main worker (as a crash or a deploy would) and starts a new one on the same task queue. */
  restartWorker(): Promise<void>;
  /** Stops the Zuora queue's worker, as a crash would take it away mid-activity. */
  stopZuoraWorker(): Promise<void>;
  /** Resolves once the batch is written to BigQuery (by the drainer workflow). */
  batchWritten(batchId: string): Promise<void>;
  /** What ingestEvents needs, for tests that call it directly. */
  ingestDeps: { db: pg.Pool; temporalHealth: TemporalHealth; taskQueue: string };
  close(): Promise<void>;
}

/**
 * The environment for an API process of its own (`api/main.ts`, or compose's command for it) on this
 * test's database, dataset, task queue and admin token, plus the given settings.
 */
export function apiProcessEnv(tally: TestTally, settings: Record<string, string>): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: tally.config.DATABASE_URL,
    TEMPORAL_ADDRESS: tally.config.TEMPORAL_ADDRESS,
    TEMPORAL_TASK_QUEUE: tally.config.TEMPORAL_TASK_QUEUE,
    BIGQUERY_API_ENDPOINT: tally.config.BIGQUERY_API_ENDPOINT,
    BIGQUERY_PROJECT: tally.config.BIGQUERY_PROJECT,
    BIGQUERY_DATASET: tally.config.BIGQUERY_DATASET,
    ADMIN_TOKEN: tally.config.ADMIN_TOKEN,
    ...settings,
  };
}

export async function startTestTally(overrides: Record<string, string> = {}): Promise<TestTally> {
  const suffix = randomBytes(4).toString('hex');
  const stackEnv = inject('stackEnv');
  const database = `test_${suffix}`;
  const admin = new pg.Client({ connectionString: stackEnv.DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const url = new URL(stackEnv.DATABASE_URL!);
  url.pathname = `/${database}`;

  const config = loadConfig({
    ...stackEnv,
    DATABASE_URL: url.toString(),
    BIGQUERY_DATASET: `test_${suffix}`,
    TEMPORAL_TASK_QUEUE: `test-${suffix}`,
    ADMIN_TOKEN: `admin-${randomBytes(16).toString('hex')}`,
    // Yesterday is closed from midnight, so tests of past days never depend on the hour they run at.
    DAY_CLOSE_DELAY_HOURS: '0',
    ...overrides,
  });
  const db = createPool(config.DATABASE_URL, 5);
  await migrate(db);
  const rawEvents = rawEventStoreFrom(config);
  await rawEvents.ensureTable();
  const zuora = zuoraClientFrom(config);
  const clientConnection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  const temporal = new Client({ connection: clientConnection, namespace: config.TEMPORAL_NAMESPACE });
  const nativeConnection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const activities = createActivities(activityDeps(config, { db, rawEvents, zuora }));
  const newWorker = () => createTallyWorker({
    connection: nativeConnection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    activities,
    workflows: { workflowBundle: { codePath: inject('workflowBundlePath') } },
    shutdownGraceTime: '1 second',
  });
  let worker = await newWorker();
  const zuoraWorker = await createZuoraWorker({
    connection: nativeConnection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: zuoraTaskQueue(config.TEMPORAL_TASK_QUEUE),
    activities,
    maxPerSecond: config.ZUORA_MAX_REQUESTS_PER_SECOND,
    shutdownGraceTime: '1 second',
  });
  let mainRun = worker.run();
  const zuoraRun = zuoraWorker.run();
  await ensureIngestDrainer(temporal, config.TEMPORAL_TASK_QUEUE);
  const app = await buildApp({ config, db, temporal, zuora });
  const { key } = await app.apiKeys.issue('test producer', ['ingest']);
  const tally: TestTally = {
    config, db, rawEvents, temporal, zuora, app, worker,
    auth: { authorization: `Bearer ${key}` },
    adminAuth: { authorization: `Bearer ${config.ADMIN_TOKEN}` },
    async orgAuth(orgId) {
      const { token } = await app.orgTokens.issue(orgId, 'test');
      return { authorization: `Bearer ${token}` };
    },
    ingestDeps: { db, temporalHealth: new TemporalHealth(temporal, 5_000), taskQueue: config.TEMPORAL_TASK_QUEUE },
    async restartWorker() {
      worker.shutdown();
      await mainRun.catch(() => undefined);
      worker = await newWorker();
      tally.worker = worker;
      mainRun = worker.run();
    },
    async stopZuoraWorker() {
      zuoraWorker.shutdown();
      while (zuoraWorker.getState() !== 'STOPPED' && zuoraWorker.getState() !== 'FAILED') await new Promise((r) => setTimeout(r, 100));
    },
    async batchWritten(batchId) {
      await eventually(async () => {
        const { rows } = await db.query('SELECT written_at FROM ingest_batches WHERE batch_id = $1', [batchId]);
        expect(rows[0]?.written_at, `batch ${batchId} written to BigQuery`).toBeTruthy();
      }, 60_000);
    },

    async close() {
      await app.close();
      // The drainer runs forever; it goes with the test's task queue.
      await temporal.workflow.getHandle(ingestDrainerWorkflowId(config.TEMPORAL_TASK_QUEUE)).terminate('test over').catch(() => undefined);
      worker.shutdown();
      if (zuoraWorker.getState() === 'RUNNING') zuoraWorker.shutdown();
      await Promise.all([mainRun, zuoraRun]);
      await Promise.allSettled([db.end(), clientConnection.close(), nativeConnection.close()]);
    },
  };
  return tally;
}
