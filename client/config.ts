import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BillingClientError } from './errors.js';

/** What happens to an event that arrives when the buffer is full. */
export type OverflowPolicy = 'reject' | 'drop-oldest' | 'spill';
export const OVERFLOW_POLICIES: readonly OverflowPolicy[] = ['reject', 'drop-oldest', 'spill'];

/**
 * The client's settings that can come from outside the code: an object, environment variables
 * or command-line flags. The Go client's three knobs keep its names and defaults
 * (`-billing.ingester`, `-billing.max-buffered-events` 1024, `-billing.retry-delay` 500ms).
 */
export interface BillingClientConfig {
  /** Base URL of the ingest API (`http://tally-api:3000`); a bare `host:port` means http. */
  url: string;
  apiKey?: string;
  /** Events held in memory at most, waiting and in flight. */
  maxBufferedEvents: number;
  /** Events per request; at or below the server's MAX_EVENTS_PER_REQUEST (1000 by default). */
  maxBatchEvents: number;
  /** How long a partial batch waits for company before it is sent. */
  flushIntervalMs: number;
  /** First retry delay; later ones double, with full jitter, up to retryMaxDelayMs. */
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  /** Retries of one batch before its events count as lost; unset: retry until close() gives up. */
  maxRetries?: number;
  requestTimeoutMs: number;
  /** close()'s deadline when it is called without one. */
  closeDeadlineMs: number;
  overflow: OverflowPolicy;
  /** Where `overflow: 'spill'` writes; one directory per process. */
  spillDir?: string;
  /** Gzip request bodies (the API decodes `Content-Encoding: gzip`). */
  gzip: boolean;
}

export const DEFAULT_CONFIG: Readonly<BillingClientConfig> = {
  url: 'http://localhost:3000',
  maxBufferedEvents: 1024,
  maxBatchEvents: 500,
  flushIntervalMs: 1000,
  retryBaseDelayMs: 500,
  retryMaxDelayMs: 30_000,
  requestTimeoutMs: 10_000,
  closeDeadlineMs: 10_000,
  overflow: 'reject',
  gzip: true,
};

type Kind = 'string' | 'count' | 'duration' | 'overflow' | 'boolean';
/** One row per setting: its config field, environment variable, flag and kind. */
const SETTINGS: ReadonlyArray<{ field: keyof BillingClientConfig; env: string; flag: string; kind: Kind; min?: number }> = [
  { field: 'url', env: 'BILLING_INGESTER', flag: 'billing.ingester', kind: 'string' },
  { field: 'apiKey', env: 'BILLING_API_KEY', flag: 'billing.api-key', kind: 'string' },
  { field: 'maxBufferedEvents', env: 'BILLING_MAX_BUFFERED_EVENTS', flag: 'billing.max-buffered-events', kind: 'count', min: 1 },
  { field: 'maxBatchEvents', env: 'BILLING_BATCH_SIZE', flag: 'billing.batch-size', kind: 'count', min: 1 },
  { field: 'flushIntervalMs', env: 'BILLING_FLUSH_INTERVAL', flag: 'billing.flush-interval', kind: 'duration', min: 1 },
  { field: 'retryBaseDelayMs', env: 'BILLING_RETRY_DELAY', flag: 'billing.retry-delay', kind: 'duration', min: 1 },
  { field: 'retryMaxDelayMs', env: 'BILLING_RETRY_MAX_DELAY', flag: 'billing.retry-max-delay', kind: 'duration', min: 1 },
  { field: 'maxRetries', env: 'BILLING_MAX_RETRIES', flag: 'billing.max-retries', kind: 'count', min: 0 },
  { field: 'requestTimeoutMs', env: 'BILLING_REQUEST_TIMEOUT', flag: 'billing.request-timeout', kind: 'duration', min: 1 },
  { field: 'closeDeadlineMs', env: 'BILLING_CLOSE_DEADLINE', flag: 'billing.close-deadline', kind: 'duration', min: 0 },
  { field: 'overflow', env: 'BILLING_OVERFLOW', flag: 'billing.overflow', kind: 'overflow' },
  { field: 'spillDir', env: 'BILLING_SPILL_DIR', flag: 'billing.spill-dir', kind: 'string' },
  { field: 'gzip', env: 'BILLING_GZIP', flag: 'billing.gzip', kind: 'boolean' },
];

/**
 * The billing flags as `node:util` parseArgs options, for a service to merge into its own. All
 * take a value, booleans too (`--billing.gzip false`), as Go's `-billing.gzip=false` does.
 */
export const billingArgOptions = Object.fromEntries(
  SETTINGS.map((s) => [s.flag, { type: 'string' }] as const),
) as Record<string, { type: 'string' }> satisfies ParseArgsConfig['options'];

/** Settings from `BILLING_*` environment variables over `base`; an unset or empty variable keeps the base value. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env, base: Partial<BillingClientConfig> = {}): BillingClientConfig {
  const config: BillingClientConfig = { ...DEFAULT_CONFIG, ...base };
  for (const s of SETTINGS) {
    const raw = env[s.env];
    if (raw === undefined || raw === '') continue;
    assign(config, s.field, convert(raw, s.kind, s.env, s.min));
  }
  return validateConfig(config);
}

/**
 * Settings from `--billing.*` flags (as the Go client's RegisterFlags named them) over `base`.
 * Other flags and positionals are left alone, so a service can pass its whole argv.
 */
export function configFromArgs(argv: readonly string[] = process.argv.slice(2), base: Partial<BillingClientConfig> = {}): BillingClientConfig {
  const { values } = parseArgs({ args: [...argv], options: billingArgOptions, strict: false, allowPositionals: true });
  return configFromParsedArgs(values, base);
}

/** The billing settings out of parseArgs values that used billingArgOptions. */
export function configFromParsedArgs(values: Record<string, unknown>, base: Partial<BillingClientConfig> = {}): BillingClientConfig {
  const config: BillingClientConfig = { ...DEFAULT_CONFIG, ...base };
  for (const s of SETTINGS) {
    const raw = values[s.flag];
    if (raw === undefined) continue;
    const name = `--${s.flag}`;
    if (s.kind === 'boolean') {
      assign(config, s.field, typeof raw === 'boolean' ? raw : convert(String(raw), 'boolean', name));
    } else if (typeof raw !== 'string') {
      throw invalidSetting(name, 'needs a value', raw);
    } else {
      assign(config, s.field, convert(raw, s.kind, name, s.min));
    }
  }
  return validateConfig(config);
}

/** Checks a whole config (one built in code, too); errors name the field. */
export function validateConfig(config: BillingClientConfig): BillingClientConfig {
  for (const s of SETTINGS) {
    const value = config[s.field];
    if (value === undefined) continue;
    if ((s.kind === 'count' || s.kind === 'duration') && (!Number.isSafeInteger(value) || (value as number) < (s.min ?? 0))) {
      throw invalidSetting(s.field, `must be an integer of at least ${s.min ?? 0}`, value);
    }
  }
  if (!OVERFLOW_POLICIES.includes(config.overflow)) throw invalidSetting('overflow', `must be one of ${OVERFLOW_POLICIES.join(', ')}`, config.overflow);
  if (config.overflow === 'spill' && !config.spillDir) throw invalidSetting('spillDir', "is required when overflow is 'spill'", config.spillDir);
  return config;
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go-style duration (`500ms`, `2s`, `1m30s`, `1.5h`) in whole milliseconds; undefined if unreadable. */
export function parseDuration(text: string): number | undefined {
  const value = text.trim();
  if (value === '0') return 0;
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(value)) return undefined;
  let ms = 0;
  for (const [, n, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(n) * UNIT_MS[unit!]!;
  return Math.round(ms);
}

function convert(raw: string, kind: Kind, name: string, min = 0): string | number | boolean {
  switch (kind) {
    case 'string':
      return raw;
    case 'count': {
      const n = /^\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
      if (!Number.isSafeInteger(n) || n < min) throw invalidSetting(name, `must be a whole number of at least ${min}`, raw);
      return n;
    }
    case 'duration': {
      const ms = parseDuration(raw);
      if (ms === undefined) throw invalidSetting(name, 'must be a duration such as 500ms, 2s or 1m', raw);
      if (ms < min) throw invalidSetting(name, `must be at least ${min} ms`, raw);
      return ms;
    }
    case 'overflow':
      if (!(OVERFLOW_POLICIES as readonly string[]).includes(raw)) throw invalidSetting(name, `must be one of ${OVERFLOW_POLICIES.join(', ')}`, raw);
      return raw;
    case 'boolean':
      if (/^(true|1|yes)$/i.test(raw)) return true;
      if (/^(false|0|no)$/i.test(raw)) return false;
      throw invalidSetting(name, 'must be true or false', raw);
  }
}

function assign(config: BillingClientConfig, field: keyof BillingClientConfig, value: unknown): void {
  (config as unknown as Record<string, unknown>)[field] = value;
}

function invalidSetting(name: string, problem: string, value: unknown): BillingClientError {
  return new BillingClientError('INVALID_OPTION', `${name} ${problem}, got ${JSON.stringify(value) ?? String(value)}`, name);
}
