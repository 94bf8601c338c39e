import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { Registry } from 'prom-client';
import { EventBatcher } from './batcher.js';
import { BillingClientError } from './errors.js';
import { createClientMetrics, type ClientMetrics } from './metrics.js';
import { backoffDelayMs } from './retry.js';
import { IngestTransport, type EventResult } from './transport.js';
import { buildEvent, type WireEvent } from './usage-event.js';

export { BillingClientError, type BillingClientErrorCode } from './errors.js';
export type { EventStatus, RequestOutcome } from './metrics.js';
export type { WireEvent } from './usage-event.js';

/** The logging calls the client makes; a pino logger fits. */
export interface BillingClientLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface BillingClientOptions {
  /** Base URL of Tally's ingest API; events go to `${url}/v1/events`. */
  url: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Events held at most (waiting and in flight); beyond it new events are dropped and counted. */
  maxBufferedEvents?: number;
  /** Events per request; keep it at or below the server's MAX_EVENTS_PER_REQUEST (1000 by default). */
  maxBatchEvents?: number;
  /** How long a partial batch waits for company before it is sent. */
  flushIntervalMs?: number;
  /** Retries of one batch before its events count as lost; unset: retry until close() gives up. */
  maxRetries?: number;
  retryBaseDelayMs?: number;
  retryMaxDelayMs?: number;
  requestTimeoutMs?: number;
  /** Where the billing_client_* metrics go; a new Registry when unset (see `client.registry`). */
  registry?: Registry;
  logger?: BillingClientLogger;
  fetch?: typeof globalThis.fetch;
}

/**
 * What a producer service embeds to report usage to Tally. addAmounts() only validates and
 * buffers; one sender in the background batches the buffer into POST /v1/events, retrying a
 * batch with the same keys until the server has answered for every event (a resend is a
 * duplicate server-side, never a double count). close() flushes within a deadline.
 */
export class BillingClient {
  readonly registry: Registry;
  private readonly metrics: ClientMetrics;
  private readonly logger: BillingClientLogger;
  private readonly batcher: EventBatcher;
  private readonly transport: IngestTransport;
  private readonly flushIntervalMs: number;
  private readonly maxRetries: number | undefined;
  private readonly retryBaseDelayMs: number;
  private readonly retryMaxDelayMs: number;
  /** Aborted at the close() deadline: ends the request in flight and any backoff wait. */
  private readonly abandon = new AbortController();
  private readonly sender: Promise<void>;
  private closing: Promise<void> | undefined;
  private droppedWhileFull = 0;

  constructor(options: BillingClientOptions) {
    const endpoint = endpointOf(options.url);
    const maxBufferedEvents = positiveInteger('maxBufferedEvents', options.maxBufferedEvents ?? 10_000);
    const maxBatchEvents = positiveInteger('maxBatchEvents', options.maxBatchEvents ?? 500);
    this.flushIntervalMs = positiveInteger('flushIntervalMs', options.flushIntervalMs ?? 1000);
    this.maxRetries = options.maxRetries === undefined ? undefined : positiveInteger('maxRetries', options.maxRetries, 0);
    this.retryBaseDelayMs = positiveInteger('retryBaseDelayMs', options.retryBaseDelayMs ?? 200);
    this.retryMaxDelayMs = positiveInteger('retryMaxDelayMs', options.retryMaxDelayMs ?? 30_000);
    const requestTimeoutMs = positiveInteger('requestTimeoutMs', options.requestTimeoutMs ?? 10_000);

    this.registry = options.registry ?? new Registry();
    this.metrics = createClientMetrics(this.registry);
    this.logger = options.logger ?? pino({ name: 'billing-client' });
    this.batcher = new EventBatcher(maxBufferedEvents, maxBatchEvents, (delta) => this.metrics.buffered.inc(delta));
    this.transport = new IngestTransport({
      endpoint, requestTimeoutMs, metrics: this.metrics,
      fetch: options.fetch ?? globalThis.fetch,
      ...(options.apiKey !== undefined ? { apiKey: options.apiKey } : {}),
    });
    this.sender = this.send().catch((err: unknown) => {
      // A bug in the sender must not pass silently: what it leaves behind is counted by close().
      this.logger.error({ err }, 'billing client sender stopped unexpectedly; buffered events will not be sent');
    });
  }

  /**
   * Records usage for sending. Returns at once: it never waits for the network and never throws
   * for transport reasons. Throws BillingClientError for a bad argument (INVALID_ARGUMENT, naming
   * it) or after close() (CLOSED). A full buffer drops this event and counts it as `dropped`.
   */
  addAmounts(
    uniqueKey: string,
    internalInstanceId: string,
    timestamp: Date,
    amounts: Record<string, number>,
    metadata?: Record<string, string>,
  ): void {
    if (this.closing) throw new BillingClientError('CLOSED', 'addAmounts: the billing client is closed; the event was not recorded');
    const event = buildEvent(uniqueKey, internalInstanceId, timestamp, amounts, metadata);
    if (!this.batcher.offer(event)) {
      // Dropping the new event keeps memory bounded and keeps the older events, which have waited longest.
      this.metrics.countEvents('dropped', [event]);
      if (this.droppedWhileFull++ === 0) {
        this.logger.warn({ capacity: this.batcher.capacity, uniqueKey }, 'billing client buffer is full; dropping new events until it has room');
      }
      return;
    }
    if (this.droppedWhileFull > 0) {
      this.logger.warn({ dropped: this.droppedWhileFull }, 'billing client buffer has room again; events were dropped while it was full');
      this.droppedWhileFull = 0;
    }
  }

  /**
   * Stops taking events, sends everything buffered (retrying within the deadline) and resolves.
   * What is still unsent at the deadline is counted as `lost` and logged with its count. Calling
   * it again returns the same promise.
   */
  close(deadlineMs = 10_000): Promise<void> {
    this.closing ??= this.shutdown(deadlineMs);
    return this.closing;
  }

  private async shutdown(deadlineMs: number): Promise<void> {
    this.batcher.notify(); // a partial batch is due now
    // This timer is ref'd: a process awaiting close() stays alive until the flush ends or the deadline passes.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => { timer = setTimeout(() => resolve('deadline'), deadlineMs); });
    const ended = await Promise.race([this.sender.then(() => 'sent' as const), deadline]);
    clearTimeout(timer);
    if (ended === 'deadline') {
      this.abandon.abort();
      this.batcher.notify();
      await this.sender;
    }
    if (this.droppedWhileFull > 0) {
      this.logger.warn({ dropped: this.droppedWhileFull }, 'billing client closed; events were dropped while the buffer was full');
    }
    const left = this.batcher.drainAll();
    if (left.length > 0) {
      this.metrics.countEvents('lost', left);
      // The batch in flight at the deadline may have reached the server; unconfirmed counts as lost.
      this.logger.error(
        { lost: left.length, deadlineMs, firstKey: left[0]?.uniqueKey },
        `billing client closed with ${left.length} events not delivered by the ${deadlineMs} ms deadline; counted as lost`,
      );
    }
  }

  /** The one sender: waits for a full batch, a due partial batch or close(), then delivers it. */
  private async send(): Promise<void> {
    while (!this.abandon.signal.aborted) {
      const draining = this.closing !== undefined;
      if (this.batcher.waiting === 0) {
        if (draining) return;
        await this.batcher.waitForWork();
        continue;
      }
      if (this.batcher.waiting < this.batcher.batchSize && !draining) {
        const dueIn = this.batcher.dueInMs(this.flushIntervalMs);
        if (dueIn > 0) {
          await this.batcher.waitForWork(dueIn);
          continue;
        }
      }
      const batch = this.batcher.takeBatch();
      // Left in flight when abandoned, so that close() counts it as lost.
      if (await this.deliver(batch)) this.batcher.settleBatch();
    }
  }

  /** Sends one batch until every event has its answer. False if the close() deadline cut it off. */
  private async deliver(batch: WireEvent[]): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      const result = await this.transport.post(batch, this.abandon.signal);
      if (result.kind === 'aborted') return false;
      if (result.kind === 'answered') {
        this.record(batch, result.results);
        return true;
      }
      if (result.kind === 'refused') {
        // The server refused the request itself (a wrong URL, a bad key, too many events): resending the same cannot help.
        this.metrics.countEvents('invalid', batch);
        this.logger.error(
          { events: batch.length, httpStatus: result.httpStatus, reason: result.reason },
          'ingest API refused the batch; its events are counted as invalid and not retried',
        );
        return true;
      }
      if (this.maxRetries !== undefined && attempt >= this.maxRetries) {
        this.metrics.countEvents('lost', batch);
        this.logger.error(
          { lost: batch.length, attempts: attempt + 1, reason: result.reason },
          `billing client gave up on a batch after ${attempt + 1} attempts; ${batch.length} events counted as lost`,
        );
        return true;
      }
      // The server's Retry-After, when it gives one, is its own estimate of when it is back; it wins over our guess.
      const delayMs = result.retryAfterMs ?? backoffDelayMs(attempt, this.retryBaseDelayMs, this.retryMaxDelayMs);
      this.logger.warn({ events: batch.length, attempt: attempt + 1, delayMs, reason: result.reason }, 'batch not delivered; retrying');
      try {
        await sleep(delayMs, undefined, { signal: this.abandon.signal, ref: false });
      } catch {
        return false; // the close() deadline passed during the wait
      }
    }
  }

  private record(batch: readonly WireEvent[], results: readonly EventResult[]): void {
    const byStatus = new Map<EventResult['status'], WireEvent[]>();
    const failures: object[] = [];
    for (const [i, event] of batch.entries()) {
      const r = results[i]!;
      const group = byStatus.get(r.status) ?? [];
      group.push(event);
      byStatus.set(r.status, group);
      if (r.status === 'conflict' || r.status === 'invalid') {
        failures.push({
          uniqueKey: event.uniqueKey, status: r.status,
          ...(r.field !== undefined ? { field: r.field } : {}),
          reason: r.reason ?? (r.status === 'conflict' ? 'the key was already used for another payload' : 'invalid'),
        });
      }
    }
    for (const [status, events] of byStatus) this.metrics.countEvents(status, events);
    if (failures.length > 0) {
      // One line per batch, with the first few reasons: a producer bug can make every event fail.
      this.logger.warn(
        { failed: failures.length, events: batch.length, examples: failures.slice(0, 5) },
        'ingest API rejected events; they are counted (conflict or invalid) and not retried',
      );
    }
  }
}

function endpointOf(url: string): URL {
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new BillingClientError('INVALID_OPTION', `url must be an absolute http(s) URL, got ${JSON.stringify(url)}`, 'url');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new BillingClientError('INVALID_OPTION', `url must be http or https, got ${base.protocol}`, 'url');
  }
  // Relative to the base's path, so that an API behind a path prefix (https://host/tally) works.
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return new URL('v1/events', base);
}

function positiveInteger(option: string, value: number, min = 1): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new BillingClientError('INVALID_OPTION', `${option} must be an integer of at least ${min}, got ${String(value)}`, option);
  }
  return value;
}
