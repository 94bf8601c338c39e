import { Client, Connection } from '@temporalio/client';
import { rawEventStoreFrom, zuoraClientFrom } from '../activities/clients.js';
import { DefaultLogger, NativeConnection, Runtime, type LogLevel, type Worker } from '@temporalio/worker';
import http from 'node:http';
import client from 'prom-client';
import { activityDeps, createActivities } from '../activities/index.js';
import type { Config } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import { migrate } from '../db/migrate.js';
import { createPool } from '../db/pool.js';
import { ensureIngestDrainer } from './ingest-drainer.js';
import { ensureSchedules } from './schedules.js';
import { createTallyWorker, createZuoraWorker, type WorkflowSource } from './worker.js';
import { zuoraTaskQueue } from '../core/task-queues.js';

export interface WorkerService {
  metricsUrl: string;
  schedules: string[];
  stop(): Promise<void>;
}

/** The worker process: dependencies, the Temporal worker, its Schedules and its /metrics. */
export async function startWorkerService(config: Config, logger: Logger, opts: { workflows?: WorkflowSource } = {}): Promise<WorkerService> {
  installSdkLogging(config, logger);
  const db = createPool(config.DATABASE_URL, config.DATABASE_POOL_SIZE, logger);
  const applied = await migrate(db);
  if (applied.length > 0) logger.info({ applied }, 'applied database migrations');
  const rawEvents = rawEventStoreFrom(config);
  await rawEvents.ensureTable();
  const zuora = zuoraClientFrom(config);
  const activities = createActivities(activityDeps(config, { db, rawEvents, zuora }));
  // Partitions for this week and the next two exist before the first request claims a key.
  logger.info(await activities.maintainKeyLedger(), 'key ledger maintained');

  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const clientConnection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  const temporal = new Client({ connection: clientConnection, namespace: config.TEMPORAL_NAMESPACE });
  const schedules = await ensureSchedules(temporal, config.TEMPORAL_TASK_QUEUE);
  const drainer = await ensureIngestDrainer(temporal, config.TEMPORAL_TASK_QUEUE);
  const worker: Worker = await createTallyWorker({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    activities,
    workflows: opts.workflows,
  });
  const zuoraWorker = await createZuoraWorker({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: zuoraTaskQueue(config.TEMPORAL_TASK_QUEUE),
    activities,
    maxPerSecond: config.ZUORA_MAX_REQUESTS_PER_SECOND,
  });
  const running = Promise.all([worker.run(), zuoraWorker.run()]);
  running.catch((err) => logger.error({ err }, 'worker stopped with an error'));

  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'tally_worker_' });
  new client.Gauge({
    name: 'tally_worker_running',
    help: '1 while the Temporal worker polls its task queue',
    registers: [registry],
    collect() {
      this.set(worker.getState() === 'RUNNING' ? 1 : 0);
    },
  });
  const metricsServer = http.createServer(async (req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
  });
  await new Promise<void>((resolve) => metricsServer.listen(config.WORKER_METRICS_PORT, config.API_HOST, resolve));
  const address = metricsServer.address();
  const port = typeof address === 'object' && address ? address.port : config.WORKER_METRICS_PORT;
  logger.info({ taskQueue: config.TEMPORAL_TASK_QUEUE, schedules, drainer, metricsPort: port }, 'worker started');

  return {
    metricsUrl: `http://${config.API_HOST}:${port}/metrics`,
    schedules,
    async stop() {
      // The SDK may already be shutting down on the same signal.
      for (const w of [worker, zuoraWorker]) if (w.getState() === 'RUNNING') w.shutdown();
      await running.catch(() => undefined);
      await Promise.allSettled([
        new Promise((resolve) => metricsServer.close(resolve)),
        connection.close(),
        clientConnection.close(),
        db.end(),
      ]);
      logger.info('worker stopped');
    },
  };
}

/** The SDK's own logs go through pino too, so the worker writes one JSON line per record. */
function installSdkLogging(config: Config, logger: Logger): void {
  const sdkLevel = ({ trace: 'TRACE', debug: 'DEBUG', info: 'INFO', warn: 'WARN' } as Record<string, LogLevel>)[config.LOG_LEVEL] ?? 'ERROR';
  const sdk = logger.child({ component: 'temporal-sdk' });
  try {
    Runtime.install({
      logger: new DefaultLogger(sdkLevel, ({ level, message, meta }) => {
        const method = level === 'WARN' ? 'warn' : level === 'ERROR' ? 'error' : level === 'TRACE' ? 'trace' : level === 'DEBUG' ? 'debug' : 'info';
        sdk[method](meta ?? {}, message);
      }),
    });
  } catch {
    // Installed already (a second service in this process): the first one's logger stays.
  }
}
