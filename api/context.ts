import type { Client } from '@temporalio/client';
import type pg from 'pg';
import type { ZuoraClient } from '../activities/zuora-client.js';
import type { Config } from '../core/config.js';
import type { TemporalHealth } from './temporal-health.js';

/** What the routes share, decorated onto the app once (api/app.ts) and closed in its onClose hook. */
export interface ApiDeps {
  config: Config;
  db: pg.Pool;
  temporal: Client;
  zuora: ZuoraClient;
}

declare module 'fastify' {
  interface FastifyInstance {
    deps: ApiDeps;
    /** Whether Temporal answers, checked before ingest accepts anything. */
    temporalHealth: TemporalHealth;
  }
}
