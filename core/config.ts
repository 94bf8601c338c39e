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
  DATABASE_POOL_SIZE: Type.Integer({ default: 32, minimum: 1, maximum: 200 }),

  BIGQUERY_PROJECT: Type.String({ default: 'tally-local', minLength: 1 }),
  BIGQUERY_DATASET: Type.String({ default: 'billing', pattern: '^[A-Za-z0-9_]+$' }),
  BIGQUERY_EVENTS_TABLE: Type.String({ default: 'events', pattern: '^[A-Za-z0-9_]+$' }),
  /** The emulator's REST endpoint; empty means the real BigQuery with Application Default Credentials. */
  BIGQUERY_API_ENDPOINT: Type.String({ default: 'http://127.0.0.1:9050' }),

  ZUORA_BASE_URL: Type.String({ default: 'http://127.0.0.1:8070', pattern: '^https?://' }),
  ZUORA_CLIENT_ID: Type.String({ default: 'tally-local', minLength: 1 }),
  ZUORA_CLIENT_SECRET: Type.String({ default: 'tally-local-secret', minLength: 1 }),
  ZUORA_IMPORT_POLL_MS: Type.Integer({ default: 1000, minimum: 10 }),
  /** Largest usage import file; Zuora refuses more than 4 MB. */
  ZUORA_IMPORT_MAX_BYTES: Type.Integer({ default: 4 * 1024 * 1024, minimum: 256, maximum: 4 * 1024 * 1024 }),
  /** Zuora calls per second across all workers (the Zuora task queue's rate limit). */
  ZUORA_MAX_REQUESTS_PER_SECOND: Type.Number({ default: 5, exclusiveMinimum: 0 }),

  API_HOST: Type.String({ default: '127.0.0.1' }),
  API_PORT: Type.Integer({ default: 3000, minimum: 0, maximum: 65535 }),
  /** API processes sharing the HTTP and forward ports (node:cluster); set it to the cores the API may use. */
  API_PROCESSES: Type.Integer({ default: 1, minimum: 1, maximum: 64 }),
  /**
   * How far each API process lets its old generation grow past what the last full collection kept,
   * in per cent (V8's `--heap-growing-percent`; 0: V8 chooses). V8 otherwise chooses anew after each
   * collection from the recent allocation rate, which after an idle spell is near zero: the next
   * burst then runs with a heap barely larger than its live data and a full collection every
   * second or so until the rate is measured again (docs/ingest.md, "API processes").
   */
  API_HEAP_GROWING_PERCENT: Type.Integer({ default: 300, minimum: 0, maximum: 1000 }),
  /** The Fluentd forward protocol listener for the original Go client (and any Fluentd sender). */
  FORWARD_ENABLED: Type.Boolean({ default: true }),
  FORWARD_HOST: Type.String({ default: '127.0.0.1' }),
  FORWARD_PORT: Type.Integer({ default: 24225, minimum: 0, maximum: 65535 }),
  WORKER_METRICS_PORT: Type.Integer({ default: 9464, minimum: 0, maximum: 65535 }),
  /**
   * The worker process's niceness. Its work (draining the outbox, aggregating, uploading) waits
   * for no client, so on a host it shares with the API it gives way to the ingest path.
   */
  WORKER_NICENESS: Type.Integer({ default: 10, minimum: 0, maximum: 19 }),

  /** `amount-type=ZUORA_UOM` pairs: the amount types Tally accepts and the Zuora unit each bills as. */
  AMOUNT_TYPES: Type.String({
    default: 'container-seconds=CONTAINER_SECONDS,node-seconds=NODE_SECONDS,weavenet-seconds=WEAVENET_SECONDS,samples=SAMPLES',
    pattern: '^[a-z0-9-]+=[A-Za-z0-9_]+(,[a-z0-9-]+=[A-Za-z0-9_]+)*$',
  }),
  MAX_EVENTS_PER_REQUEST: Type.Integer({ default: 1000, minimum: 1, maximum: 10000 }),
  MAX_BODY_BYTES: Type.Integer({ default: 5 * 1024 * 1024, minimum: 1024 }),
  /** An ingest request that took at least this long (ms) is logged with the time of each step; 0 logs none. */
  INGEST_SLOW_REQUEST_MS: Type.Integer({ default: 1000, minimum: 0 }),
  /** How far back an event may be dated, in days. */
  BACKDATING_WINDOW_DAYS: Type.Integer({ default: 35, minimum: 1, maximum: 400 }),
  /** Days a written batch keeps its events in the Postgres outbox (a replay source) before only its record stays. */
  OUTBOX_RETENTION_DAYS: Type.Integer({ default: 7, minimum: 1, maximum: 400 }),

  /** Trial length for a new organisation, unless sign-up gives its own. */
  TRIAL_DAYS: Type.Integer({ default: 30, minimum: 1, maximum: 365 }),
  /** Days before the trial's end when a reminder goes out, comma separated. */
  TRIAL_REMINDER_DAYS: Type.String({ default: '7,3,1', pattern: '^(\\d{1,3}(,\\d{1,3})*)?$' }),
  /** Where trial webhooks (reminders, expiry, enforcement, lift) are POSTed; empty sends none. */
  TRIAL_WEBHOOK_URL: Type.String({ default: '', pattern: '^(https?://.*)?$' }),
  /** The HMAC-SHA256 key of the webhooks' X-Tally-Signature header. */
  TRIAL_WEBHOOK_SECRET: Type.String({ default: 'tally-local-webhook-secret', minLength: 8 }),
  /** smtp(s)://user:pass@host:port for trial emails; empty writes them to the notification_outbox table. */
  NOTIFY_SMTP_URL: Type.String({ default: '', pattern: '^(smtps?://.*)?$' }),
  /** Hours after a day's UTC midnight until it closes: then the upload takes it, and later events restate it. */
  DAY_CLOSE_DELAY_HOURS: Type.Integer({ default: 2, minimum: 0, maximum: 168 }),
  /** Operators' bearer token for /admin routes and the admin UI; empty closes admin (npm start makes one). */
  ADMIN_TOKEN: Type.String({ default: '' }),
  NOTIFY_EMAIL_FROM: Type.String({ default: 'Tally Billing <billing@tally.local>', minLength: 3 }),
  /** How long PUT …/payment-method waits for the trial's conversion (a Zuora call) before answering 202 and leaving it to Temporal. */
  PAYMENT_METHOD_WAIT_MS: Type.Integer({ default: 15_000, minimum: 100, maximum: 120_000 }),
  /** Self-service registration (POST /v1/signup); off, organisations are registered by operators only. */
  SIGNUP_ENABLED: Type.Boolean({ default: true }),
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
