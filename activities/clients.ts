import type { Config } from '../core/config.js';
import { BigQuery } from '@google-cloud/bigquery';
import { PassThroughClient } from 'google-auth-library';
import { RawEventStore } from './raw-events.js';
import { ZuoraClient } from './zuora-client.js';

/** The raw event table the configuration names, through the emulator or BigQuery itself. */
export function rawEventStoreFrom(config: Pick<Config, 'BIGQUERY_PROJECT' | 'BIGQUERY_API_ENDPOINT' | 'BIGQUERY_DATASET' | 'BIGQUERY_EVENTS_TABLE'>): RawEventStore {
  return new RawEventStore(
    createBigQuery({ projectId: config.BIGQUERY_PROJECT, apiEndpoint: config.BIGQUERY_API_ENDPOINT }),
    config.BIGQUERY_DATASET,
    config.BIGQUERY_EVENTS_TABLE,
  );
}

export function zuoraClientFrom(config: Pick<Config, 'ZUORA_BASE_URL' | 'ZUORA_CLIENT_ID' | 'ZUORA_CLIENT_SECRET'>): ZuoraClient {
  return new ZuoraClient({ baseUrl: config.ZUORA_BASE_URL, clientId: config.ZUORA_CLIENT_ID, clientSecret: config.ZUORA_CLIENT_SECRET });
}

/**
 * The official client, pointed at the emulator when an endpoint is configured (no credentials
 * there), or at BigQuery itself with Application Default Credentials.
 */
export function createBigQuery(opts: { projectId: string; apiEndpoint: string }): BigQuery {
  if (opts.apiEndpoint === '') return new BigQuery({ projectId: opts.projectId });
  return new BigQuery({
    projectId: opts.projectId,
    apiEndpoint: opts.apiEndpoint,
    authClient: new PassThroughClient() as never,
  });
}
