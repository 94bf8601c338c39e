import pino from 'pino';
import { Registry } from 'prom-client';
import type { Amounts } from './amount-types.js';
import { EventBatcher } from './batcher.js';
import { DEFAULT_CONFIG, validateConfig, type BillingClientConfig } from './config.js';
import { BillingClientError } from './errors.js';
import { createClientMetrics, type ClientMetrics } from './metrics.js';
import { Sender, type RejectedStatus } from './sender.js';
import { SpillStore } from './spill.js';
import { IngestTransport } from './transport.js';
import { buildEvent, type WireEvent } from './usage-event.js';

export * from './amount-types.js';
export {
  DEFAULT_CONFIG, billingArgOptions, configFromArgs, configFromEnv, configFromParsedArgs, parseDuration, validateConfig,
  type BillingClientConfig, type OverflowPolicy,
} from './config.js';
export { BillingClientError, type BillingClientErrorCode } from './errors.js';
export type { EventStatus, RequestOutcome } from './metrics.js';
export type { RejectedStatus } from './sender.js';
export type { WireEvent } from './usage-event.js';

/** The logging calls the client makes; a pino logger fits. */
export interface BillingClientLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface BillingClientOptions extends Partial<BillingClientConfig> {
  /** Where the billing_client_* metrics go; a new Registry when unset (see `client.registry`). */
  registry?: Registry;
  logger?: BillingClientLogger;
  /**
   * Told of every event that will not be delivered and that addAmounts did not already report:
   * `invalid` or `conflict` answers (never retried), an oldest event dropped under
   * `overflow: 'drop-oldest'` (`buffer_full`), a batch given up after maxRetries (`lost`).
   */
  onRejected?: (event: WireEvent, status: RejectedStatus, reason: string) => void;
  fetch?: typeof globalThis.fetch;
}

/**
 * What addAmounts did with the event. `buffer_full` (overflow 'reject'): it was not recorded,
 * the caller still holds it. `dropped_oldest`: it was buffered, and the oldest waiting event was
 * dropped for it (reported through onRejected). `spilled`: written to the spill directory.
 */
export type AddStatus = 'buffered' | 'spilled' | 'dropped_oldest' | 'buffer_full';

/** What close() could not deliver by its deadline, by unique key. */
export interface CloseReport {
  /** Every event neither answered by the server nor reported through onRejected. */
  undelivered: string[];
  /** Those of them kept in spill files: the next client on the same spillDir sends them. */
  spilled: string[];
}

/**
 * What a producer service embeds to report usage to Tally. addAmounts() only validates and
 * buffers; one sender in the background batches the buffer into gzipped POST /v1/events,
 * retrying a batch with the same keys until the server has answered for every event (a resend
 * is a duplicate server-side, never a double count). close() flushes within a deadline.
 */
export class BillingClient {
  readonly registry: Registry;
  readonly config: Readonly<BillingClientConfig>;
  private readonly metrics: ClientMetrics;
  private readonly logger: BillingClientLogger;
  private readonly batcher: EventBatcher;
  private readonly spill: SpillStore | undefined;
  private readonly sender: Sender;
  private readonly untrackBuffer: () => void;
  private readonly onRejected: BillingClientOptions['onRejected'];
  private closing: Promise<CloseReport> | undefined;
  private fullSince = 0;
  private spillFailing = false;

  constructor(options: BillingClientOptions = {}) {
    const { registry, logger, onRejected, fetch, ...settings } = options;
    const defined = Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined));
    this.config = Object.freeze(validateConfig({ ...DEFAULT_CONFIG, ...defined }));
    const endpoint = endpointOf(this.config.url);

    this.registry = registry ?? new Registry();
    this.metrics = createClientMetrics(this.registry);
    this.logger = logger ?? pino({ name: 'billing-client' });
    this.onRejected = onRejected;
    this.batcher = new EventBatcher(this.config.maxBufferedEvents, this.config.maxBatchEvents);
    this.untrackBuffer = this.metrics.trackBuffer(() => this.batcher.size);
    // A spill file holds at most one buffer's worth, so a replay takes no more memory than the buffer.
    this.spill = this.config.overflow === 'spill'
      ? new SpillStore(this.config.spillDir!, this.config.maxBufferedEvents, this.logger)
      : undefined;
    const transport = new IngestTransport({
      endpoint, requestTimeoutMs: this.config.requestTimeoutMs, gzip: this.config.gzip, metrics: this.metrics,
      fetch: fetch ?? globalThis.fetch,
      ...(this.config.apiKey ? { apiKey: this.config.apiKey } : {}),
    });
    this.sender = new Sender({
      config: this.config, batcher: this.batcher, spill: this.spill, transport, metrics: this.metrics, logger: this.logger,
      isClosing: () => this.closing !== undefined,
      reject: (events, status, reason) => this.reject(events, status, reason),
    });
  }

  /** Events held in memory now: waiting and in flight. */
  get buffered(): number {
    return this.batcher.size;
  }

  /**
   * Records usage for sending and says what became of it. Returns at once: it never waits for
   * the network and never throws for transport reasons. Throws BillingClientError for a bad
   * argument (INVALID_ARGUMENT, naming it) or after close() (CLOSED).
   */
  addAmounts(
    uniqueKey: string,
    internalInstanceId: string,
    timestamp: Date,
    amounts: Amounts,
    metadata?: Record<string, string>,
  ): AddStatus {
    if (this.closing) throw new BillingClientError('CLOSED', 'addAmounts: the billing client is closed; the event was not recorded');
    const event = buildEvent(uniqueKey, internalInstanceId, timestamp, amounts, metadata);
    if (this.batcher.offer(event)) {
      if (this.fullSince > 0) this.roomAgain();
      return 'buffered';
    }
    if (this.fullSince++ === 0) {
      this.logger.warn({ capacity: this.batcher.capacity, overflow: this.config.overflow, uniqueKey }, 'billing client buffer is full');
    }
    switch (this.config.overflow) {
      case 'spill':
        try {
          this.spill!.append(event);
          this.spillFailing = false;
        } catch (err) {
          // A full or read-only disk: the caller hears buffer_full and still holds the event. One line per failing spell.
          if (!this.spillFailing) this.logger.error({ err, dir: this.config.spillDir, uniqueKey }, 'billing client could not write to its spill directory');
          this.spillFailing = true;
          break;
        }
        this.metrics.spill.inc({ action: 'written' });
        this.batcher.notify(); // the sender may replay it as soon as it has nothing due in memory
        return 'spilled';
      case 'drop-oldest': {
        const oldest = this.batcher.dropOldest();
        if (oldest && this.batcher.offer(event)) {
          this.reject([oldest], 'buffer_full', 'dropped to make room for a newer event (overflow: drop-oldest)');
          return 'dropped_oldest';
        }
        break; // everything held is in flight: nothing older may be dropped
      }
      case 'reject':
        break;
    }
    this.metrics.countEventSoon('buffer_full', event);
    return 'buffer_full';
  }

  /**
   * Stops taking events, sends everything buffered and spilled (retrying within the deadline)
   * and says which events were not delivered. At the deadline the request in flight is cut off;
   * what is left is kept in spill files under `overflow: 'spill'`, else counted as `lost`.
   * Calling it again returns the same promise.
   */
  close(deadlineMs: number = this.config.closeDeadlineMs): Promise<CloseReport> {
    this.closing ??= this.shutdown(deadlineMs);
    return this.closing;
  }

  private async shutdown(deadlineMs: number): Promise<CloseReport> {
    await this.sender.drain(deadlineMs);
    if (this.fullSince > 0) this.roomAgain();
    // The batch in flight at the deadline may have reached the server; unconfirmed counts as undelivered.
    const left = this.batcher.drainAll();
    this.untrackBuffer();
    let spilled: string[] = [];
    let lost = left;
    if (this.spill) {
      lost = [];
      for (const event of left) {
        try {
          this.spill.append(event);
          this.metrics.spill.inc({ action: 'written' });
        } catch (err) {
          if (lost.length === 0) this.logger.error({ err, dir: this.spill.dir }, 'billing client could not write to its spill directory at close');
          lost.push(event);
        }
      }
      this.spill.close();
      spilled = [...this.sender.unansweredReplayKeys(), ...this.spill.keysOnDisk(this.sender.replayFile)];
      if (spilled.length > 0) {
        this.logger.warn({ spilled: spilled.length, dir: this.spill.dir, deadlineMs }, 'billing client closed with events kept in spill files; the next start sends them');
      }
    }
    if (lost.length > 0) {
      this.metrics.countEvents('lost', lost);
      this.logger.error(
        { lost: lost.length, deadlineMs, firstKey: lost[0]?.uniqueKey },
        `billing client closed with ${lost.length} events not delivered by the ${deadlineMs} ms deadline; counted as lost`,
      );
    }
    return { undelivered: [...lost.map((e) => e.uniqueKey), ...spilled], spilled };
  }

  private roomAgain(): void {
    this.logger.warn({ overflowed: this.fullSince, overflow: this.config.overflow }, 'billing client buffer has room again');
    this.fullSince = 0;
  }

  private reject(events: readonly WireEvent[], status: RejectedStatus, reason: string): void {
    this.metrics.countEvents(status, events);
    if (!this.onRejected) return;
    for (const event of events) {
      try {
        this.onRejected(event, status, reason);
      } catch (err) {
        // The producer's callback must not stop the sender; its failure is the producer's to see.
        this.logger.error({ err, uniqueKey: event.uniqueKey }, 'onRejected callback threw');
      }
    }
  }
}

function endpointOf(url: string): URL {
  // A bare host:port, as the Go client's -billing.ingester took, means plain http.
  const absolute = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`;
  let base: URL;
  try {
    base = new URL(absolute);
  } catch {
    throw new BillingClientError('INVALID_OPTION', `url must be an absolute http(s) URL or host:port, got ${JSON.stringify(url)}`, 'url');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new BillingClientError('INVALID_OPTION', `url must be http or https, got ${base.protocol}`, 'url');
  }
  // Relative to the base's path, so that an API behind a path prefix (https://host/tally) works.
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return new URL('v1/events', base);
}
