import envSchema from 'env-schema';
import { Type, type Static } from '@sinclair/typebox';

/**
 * Every setting of Tally, read from the environment once, validated, with the defaults that
 * match the embedded stack `npm start` brings up. A bad value stops the process with a message
 * naming the variable.
 */
export const ConfigSchema = Type.Object({
  LOG_LEVEL: Type.Union(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),

  TEMPORAL_ADDRESS: Type.String({ default: '127.0.0.1:7233', minLength: 3 }),
  TEMPORAL_NAMESPACE: Type.String({ default: 'default', minLength: 1 }),
  TEMPORAL_TASK_QUEUE: Type.String({ default: 'tally', minLength: 1 }),
  TEMPORAL_UI_URL: Type.String({ default: 'http://127.0.0.1:8233', pattern: '^https?://' }),

  DATABASE_URL: Type.String({ default: 'postgres://tally:tally@127.0.0.1:5433/tally', pattern: '^postgres(ql)?://' }),
  DATABASE_POOL_SIZE: Type.Integer({ default: 10, minimum: 1, maximum: 200 }),

  BIGQUERY_PROJECT: Type.String({ default: 'tally-local', minLength: 1 }),
  BIGQUERY_DATASET: Type.String({ default: 'billing', pattern: '^[A-Za-z0-9_]+$' }),
  BIGQUERY_EVENTS_TABLE: Type.String({ default: 'events', pattern: '^[A-Za-z0-9_]+$' }),
  /** The emulator's REST endpoint; empty means the real BigQuery with Application Default Credentials. */
  BIGQUERY_API_ENDPOINT: Type.String({ default: 'http://127.0.0.1:9050' }),

  ZUORA_BASE_URL: Type.String({ default: 'http://127.0.0.1:8070', pattern: '^https?://' }),
  ZUORA_CLIENT_ID: Type.String({ default: 'tally-local', minLength: 1 }),
  ZUORA_CLIENT_SECRET: Type.String({ default: 'tally-local-secret', minLength: 1 }),
  ZUORA_IMPORT_POLL_MS: Type.Integer({ default: 1000, minimum: 10 }),

  API_HOST: Type.String({ default: '127.0.0.1' }),
  API_PORT: Type.Integer({ default: 3000, minimum: 0, maximum: 65535 }),
  /** The Fluentd forward protocol listener for the original Go client (and any Fluentd sender). */
  FORWARD_ENABLED: Type.Boolean({ default: true }),
  FORWARD_HOST: Type.String({ default: '127.0.0.1' }),
  FORWARD_PORT: Type.Integer({ default: 24225, minimum: 0, maximum: 65535 }),
  WORKER_METRICS_PORT: Type.Integer({ default: 9464, minimum: 0, maximum: 65535 }),

  /** `amount-type=ZUORA_UOM` pairs: the amount types Tally accepts and the Zuora unit each bills as. */
  AMOUNT_TYPES: Type.String({
    default: 'container-seconds=CONTAINER_SECONDS,node-seconds=NODE_SECONDS,weavenet-seconds=WEAVENET_SECONDS,samples=SAMPLES',
    pattern: '^[a-z0-9-]+=[A-Za-z0-9_]+(,[a-z0-9-]+=[A-Za-z0-9_]+)*$',
  }),
  MAX_EVENTS_PER_REQUEST: Type.Integer({ default: 1000, minimum: 1, maximum: 10000 }),
  MAX_BODY_BYTES: Type.Integer({ default: 5 * 1024 * 1024, minimum: 1024 }),
  /** How far back an event may be dated, in days. */
  BACKDATING_WINDOW_DAYS: Type.Integer({ default: 35, minimum: 1, maximum: 400 }),
});

export type RawConfig = Static<typeof ConfigSchema>;

export interface Config extends RawConfig {
  /** Amount type → Zuora unit of measure. */
  amountTypes: ReadonlyMap<string, string>;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  let raw: RawConfig;
  try {
    raw = envSchema<RawConfig>({ schema: ConfigSchema, data: { ...env }, dotenv: false });
  } catch (err) {
    // Ajv's message names the variable ("env/API_PORT must be integer"); keep it and say where it came from.
    throw new ConfigError(`Invalid configuration: ${(err as Error).message}`);
  }
  const amountTypes = new Map(
    raw.AMOUNT_TYPES.split(',').map((pair) => pair.split('=') as [string, string]),
  );
  return { ...raw, amountTypes };
}
