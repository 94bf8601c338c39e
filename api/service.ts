import { Client, Connection } from '@temporalio/client';
import { ZuoraClient } from '../activities/zuora-client.js';
import type { Config } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import { migrate } from '../db/migrate.js';
import { createPool } from '../db/pool.js';
import { buildApp } from './app.js';

export interface ApiService {
  url: string;
  stop(): Promise<void>;
}

/** The API process: its dependencies, the listening server, and an orderly close. */
export async function startApiService(config: Config, logger: Logger): Promise<ApiService> {
  const db = createPool(config.DATABASE_URL, config.DATABASE_POOL_SIZE);
  await migrate(db);
  // Lazy: the API starts (and answers 503 on ingest) even while Temporal is down.
  const connection = Connection.lazy({ address: config.TEMPORAL_ADDRESS });
  const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const zuora = new ZuoraClient({ baseUrl: config.ZUORA_BASE_URL, clientId: config.ZUORA_CLIENT_ID, clientSecret: config.ZUORA_CLIENT_SECRET });
  const app = await buildApp({ config, db, temporal, zuora }, logger);
  app.addHook('onClose', async () => {
    await Promise.allSettled([db.end(), connection.close()]);
  });
  const url = await app.listen({ host: config.API_HOST, port: config.API_PORT });
  return { url, stop: () => app.close() };
}
