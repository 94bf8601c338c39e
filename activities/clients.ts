import type { Config } from '../core/config.js';
import { createBigQuery } from './bigquery-client.js';
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
