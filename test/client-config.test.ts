import { describe, expect, it } from 'vitest';
import { BillingClient, BillingClientError, DEFAULT_CONFIG, configFromArgs, configFromEnv, parseDuration } from '../client/index.js';
import { backoffDelayMs, retryAfterMs } from '../client/retry.js';

// Settings from an object, the environment and flags; the bad ones named. No stack needed.

function thrown(call: () => unknown): BillingClientError {
  try {
    call();
  } catch (err) {
    expect(err).toBeInstanceOf(BillingClientError);
    return err as BillingClientError;
  }
  throw new Error('expected a BillingClientError');
}

describe('billing client config', () => {
  it("keeps the Go client's defaults", () => {
    expect(DEFAULT_CONFIG).toMatchObject({ maxBufferedEvents: 1024, retryBaseDelayMs: 500, overflow: 'reject', gzip: true });
    expect(configFromEnv({})).toEqual(DEFAULT_CONFIG);
    expect(configFromArgs([])).toEqual(DEFAULT_CONFIG);
  });

  it('reads durations the way Go flags write them', () => {
    expect(['500ms', '2s', '1m30s', '1.5s', '0', '250us'].map(parseDuration)).toEqual([500, 2000, 90_000, 1500, 0, 0]);
    expect(['500', '2 s', 's', '-1s', ''].map(parseDuration)).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it('reads BILLING_* environment variables over a base', () => {
    const config = configFromEnv({
      BILLING_INGESTER: 'http://tally-api:3000', BILLING_API_KEY: 'k', BILLING_MAX_BUFFERED_EVENTS: '5000',
      BILLING_RETRY_DELAY: '2s', BILLING_BATCH_SIZE: '250', BILLING_FLUSH_INTERVAL: '100ms', BILLING_REQUEST_TIMEOUT: '3s',
      BILLING_CLOSE_DEADLINE: '1m', BILLING_OVERFLOW: 'spill', BILLING_SPILL_DIR: '/var/spool/billing', BILLING_GZIP: 'false',
      BILLING_MAX_RETRIES: '0', BILLING_UNRELATED: 'x',
    }, { retryMaxDelayMs: 5_000 });
    expect(config).toEqual({
      url: 'http://tally-api:3000', apiKey: 'k', maxBufferedEvents: 5000, retryBaseDelayMs: 2000, retryMaxDelayMs: 5000,
      maxBatchEvents: 250, flushIntervalMs: 100, requestTimeoutMs: 3000, closeDeadlineMs: 60_000, overflow: 'spill',
      spillDir: '/var/spool/billing', gzip: false, maxRetries: 0,
    });
  });

  it("reads the Go client's flag names, leaving a service's other flags alone", () => {
    const config = configFromArgs([
      '--port', '8080', '--billing.ingester=tally-api:3000', '--billing.max-buffered-events', '64',
      '--billing.retry-delay', '250ms', '--billing.overflow', 'drop-oldest', 'positional',
    ]);
    expect(config).toMatchObject({ url: 'tally-api:3000', maxBufferedEvents: 64, retryBaseDelayMs: 250, overflow: 'drop-oldest' });
    expect(configFromArgs(['--billing.gzip=false']).gzip).toBe(false);
    expect(configFromArgs(['--billing.gzip', 'no']).gzip).toBe(false);
    expect(configFromArgs(['--billing.gzip']).gzip).toBe(true); // bare, as a service's own boolean flags read
  });

  it.each([
    [{ BILLING_MAX_BUFFERED_EVENTS: 'lots' }, 'BILLING_MAX_BUFFERED_EVENTS', 'lots'],
    [{ BILLING_MAX_BUFFERED_EVENTS: '0' }, 'BILLING_MAX_BUFFERED_EVENTS', '0'],
    [{ BILLING_RETRY_DELAY: '500' }, 'BILLING_RETRY_DELAY', 'duration such as 500ms'],
    [{ BILLING_OVERFLOW: 'block' }, 'BILLING_OVERFLOW', 'reject, drop-oldest, spill'],
    [{ BILLING_GZIP: 'maybe' }, 'BILLING_GZIP', 'true or false'],
    [{ BILLING_OVERFLOW: 'spill' }, 'spillDir', 'required'],
  ])('names a bad environment variable: %o', (env, name, hint) => {
    const err = thrown(() => configFromEnv(env));
    expect(err).toMatchObject({ code: 'INVALID_OPTION', argument: name });
    expect(err.message).toContain(name);
    expect(err.message).toContain(hint);
  });

  it.each([
    [['--billing.retry-delay', 'soon'], '--billing.retry-delay'],
    [['--billing.max-buffered-events=-3'], '--billing.max-buffered-events'],
    [['--billing.ingester'], '--billing.ingester'],
  ])('names a bad flag: %o', (argv, name) => {
    const err = thrown(() => configFromArgs(argv));
    expect(err).toMatchObject({ code: 'INVALID_OPTION', argument: name });
    expect(err.message).toMatch(new RegExp(`^${name.replace(/\./g, '\\.')} `));
  });

  it('builds a client from a config, and names a bad setting given in code', () => {
    const client = new BillingClient({ ...configFromEnv({ BILLING_INGESTER: '127.0.0.1:9' }), logger: console });
    expect(client.config).toMatchObject({ url: '127.0.0.1:9', maxBufferedEvents: 1024 });
    void client.close(0);
    expect(thrown(() => new BillingClient({ retryBaseDelayMs: 1.5 }))).toMatchObject({ argument: 'retryBaseDelayMs' });
  });
});

describe('retry timing', () => {
  it('doubles the cap from the retry delay up to the maximum, with full jitter below it', () => {
    const top = () => 0.999_999;
    expect([0, 1, 2, 3, 10].map((n) => backoffDelayMs(n, DEFAULT_CONFIG.retryBaseDelayMs, 4_000, top))).toEqual([499, 999, 1999, 3999, 3999]);
    expect(backoffDelayMs(5, 500, 30_000, () => 0)).toBe(0);
  });

  it("reads Retry-After as seconds or as an HTTP date, and ignores what it cannot read", () => {
    const now = Date.parse('2026-11-25T12:00:00Z');
    expect(retryAfterMs('5', now)).toBe(5_000);
    expect(retryAfterMs('Wed, 25 Nov 2026 12:00:30 GMT', now)).toBe(30_000);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });
});
