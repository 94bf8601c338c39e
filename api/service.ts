import { Client, Connection } from '@temporalio/client';
import { zuoraClientFrom } from '../activities/clients.js';
import type { Config } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import { migrate } from '../db/migrate.js';
import { createPool } from '../db/pool.js';
import { buildApp } from './app.js';
import { eventRulesFromConfig } from './event-rules.js';
import { startForwardServer } from './forward/server.js';
import { observeIngestStore } from './plugins/metrics.js';

export interface ApiService {
  url: string;
  /** host:port of the Fluentd forward listener, when enabled. */
  forwardAddress?: string;
  stop(): Promise<void>;
}

/** The API process: its dependencies, the listening server, and an orderly close. */
export async function startApiService(config: Config, logger: Logger): Promise<ApiService> {
  const db = createPool(config.DATABASE_URL, config.DATABASE_POOL_SIZE, logger);
  await migrate(db);
  // Lazy: the API starts (and answers 503 on ingest) even while Temporal is down.
  const connection = Connection.lazy({ address: config.TEMPORAL_ADDRESS });
  const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const zuora = zuoraClientFrom(config);
  const app = await buildApp({ config, db, temporal, zuora }, logger);
  app.addHook('onClose', async () => {
    await Promise.allSettled([db.end(), connection.close()]);
  });
  const forward = config.FORWARD_ENABLED
    ? await startForwardServer({
        host: config.FORWARD_HOST,
        port: config.FORWARD_PORT,
        deps: {
          db, temporalHealth: app.temporalHealth, taskQueue: config.TEMPORAL_TASK_QUEUE, rules: eventRulesFromConfig(config),
          onStored: (timings, amounts) => observeIngestStore(app.metrics, timings, amounts),
        },
        logger,
        registry: app.metrics.registry,
      })
    : undefined;
  // The forward listener finishes what it took before the pool it writes through closes.
  if (forward) app.addHook('preClose', async () => forward.close());
  const url = await app.listen({ host: config.API_HOST, port: config.API_PORT });
  return {
    url,
    ...(forward ? { forwardAddress: `${config.FORWARD_HOST}:${forward.port}` } : {}),
    stop: () => app.close(),
  };
}
