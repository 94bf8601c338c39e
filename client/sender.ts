import { setTimeout as sleep } from 'node:timers/promises';
import type { EventBatcher } from './batcher.js';
import type { BillingClientConfig } from './config.js';
import type { ClientMetrics } from './metrics.js';
import { backoffDelayMs } from './retry.js';
import type { SpillReplay, SpillStore } from './spill.js';
import type { EventResult, IngestTransport } from './transport.js';
import type { WireEvent } from './usage-event.js';

/** Why an event will not be delivered, as onRejected hears it. */
export type RejectedStatus = 'invalid' | 'conflict' | 'buffer_full' | 'lost';

export interface SenderDeps {
  config: Readonly<BillingClientConfig>;
  batcher: EventBatcher;
  spill: SpillStore | undefined;
  transport: IngestTransport;
  metrics: ClientMetrics;
  logger: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
  isClosing(): boolean;
  reject(events: readonly WireEvent[], status: RejectedStatus, reason: string): void;
}

/**
 * The client's one sender: takes a full batch, a due partial batch, or (when memory has nothing
 * due) the next batch of a spill file, and delivers it until the server has answered for every
 * event. One request in flight at a time.
 */
export class Sender {
  /** Aborted at the close() deadline: ends the request in flight and any backoff wait. */
  private readonly abandon = new AbortController();
  private readonly running: Promise<void>;
  private replay: SpillReplay | undefined;

  constructor(private readonly deps: SenderDeps) {
    this.running = this.loop().catch((err: unknown) => {
      // A bug in the sender must not pass silently: what it leaves behind is reported by close().
      deps.logger.error({ err }, 'billing client sender stopped unexpectedly; buffered events will not be sent');
    });
  }

  /** The spill file being replayed, if any. */
  get replayFile(): string | undefined {
    return this.replay?.file;
  }

  /** Keys of the replayed file's events that have no answer yet. */
  unansweredReplayKeys(): string[] {
    return this.replay ? this.replay.events.slice(this.replay.answered).map((e) => e.uniqueKey) : [];
  }

  /** Lets the loop finish what is buffered and spilled, or cuts it off at the deadline. */
  async drain(deadlineMs: number): Promise<void> {
    this.deps.batcher.notify(); // a partial batch is due now
    // This timer is ref'd: a process awaiting close() stays alive until the flush ends or the deadline passes.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => { timer = setTimeout(() => resolve('deadline'), deadlineMs); });
    const ended = await Promise.race([this.running.then(() => 'sent' as const), deadline]);
    clearTimeout(timer);
    if (ended === 'deadline') {
      this.abandon.abort();
      this.deps.batcher.notify();
      await this.running;
    }
  }

  private async loop(): Promise<void> {
    const { batcher, config } = this.deps;
    while (!this.abandon.signal.aborted) {
      const draining = this.deps.isClosing();
      const waiting = batcher.waiting;
      const dueIn = waiting > 0 && waiting < batcher.batchSize && !draining ? batcher.dueInMs(config.flushIntervalMs) : 0;
      if (waiting > 0 && dueIn === 0) {
        const batch = batcher.takeBatch();
        // Left in flight when abandoned, so that close() reports it.
        if (await this.deliver(batch, false)) batcher.settleBatch();
        continue;
      }
      const replayed = this.nextReplayBatch();
      if (replayed) {
        if (await this.deliver(replayed, true)) this.replay!.answered += replayed.length;
        continue;
      }
      if (waiting === 0 && draining) return;
      await batcher.waitForWork(waiting > 0 ? dueIn : undefined);
    }
  }

  /** The next batch of the spill file being replayed, opening the next file when one is done. */
  private nextReplayBatch(): WireEvent[] | undefined {
    const { spill, batcher, metrics } = this.deps;
    if (!spill) return undefined;
    while (true) {
      if (this.replay && this.replay.answered < this.replay.events.length) {
        return this.replay.events.slice(this.replay.answered, this.replay.answered + batcher.batchSize);
      }
      // Every event of the file has its answer: deleting it now cannot lose one.
      if (this.replay) spill.finishReplay(this.replay);
      this.replay = spill.hasPending ? spill.startReplay() : undefined;
      if (!this.replay) return undefined;
      metrics.spill.inc({ action: 'replayed' }, this.replay.events.length);
    }
  }

  /**
   * Sends one batch until every event has its answer. False if the close() deadline cut it off.
   * A replayed batch ignores maxRetries: its events are safe on disk, so giving up gains nothing.
   */
  private async deliver(batch: WireEvent[], replayed: boolean): Promise<boolean> {
    const { transport, config, logger, reject } = this.deps;
    for (let attempt = 0; ; attempt++) {
      const result = await transport.post(batch, this.abandon.signal);
      if (result.kind === 'aborted') return false;
      if (result.kind === 'answered') {
        this.record(batch, result.results);
        return true;
      }
      if (result.kind === 'refused') {
        // The server refused the request itself (a wrong URL, a bad key, too many events): resending the same cannot help.
        logger.error(
          { events: batch.length, httpStatus: result.httpStatus, reason: result.reason },
          'ingest API refused the batch; its events are counted as invalid and not retried',
        );
        reject(batch, 'invalid', result.reason);
        return true;
      }
      if (!replayed && config.maxRetries !== undefined && attempt >= config.maxRetries) {
        logger.error(
          { lost: batch.length, attempts: attempt + 1, reason: result.reason },
          `billing client gave up on a batch after ${attempt + 1} attempts; ${batch.length} events counted as lost`,
        );
        reject(batch, 'lost', `not delivered after ${attempt + 1} attempts: ${result.reason}`);
        return true;
      }
      // The server's Retry-After, when it gives one, is its own estimate of when it is back; it wins over our guess.
      const delayMs = result.retryAfterMs ?? backoffDelayMs(attempt, config.retryBaseDelayMs, config.retryMaxDelayMs);
      logger.warn({ events: batch.length, attempt: attempt + 1, delayMs, reason: result.reason }, 'batch not delivered; retrying');
      try {
        await sleep(delayMs, undefined, { signal: this.abandon.signal, ref: false });
      } catch {
        return false; // the close() deadline passed during the wait
      }
    }
  }

  private record(batch: readonly WireEvent[], results: readonly EventResult[]): void {
    const delivered = new Map<'accepted' | 'duplicate', WireEvent[]>();
    const failures: Array<{ event: WireEvent; status: 'conflict' | 'invalid'; field?: string; reason: string }> = [];
    for (const [i, event] of batch.entries()) {
      const r = results[i]!;
      if (r.status === 'conflict' || r.status === 'invalid') {
        const reason = r.reason ?? (r.status === 'conflict' ? 'the key was already used for another payload' : 'invalid');
        failures.push({ event, status: r.status, ...(r.field !== undefined ? { field: r.field } : {}), reason });
      } else {
        const group = delivered.get(r.status) ?? [];
        group.push(event);
        delivered.set(r.status, group);
      }
    }
    for (const [status, events] of delivered) this.deps.metrics.countEvents(status, events);
    if (failures.length === 0) return;
    // One line per batch, with the first few reasons: a producer bug can make every event fail.
    this.deps.logger.warn(
      {
        failed: failures.length, events: batch.length,
        examples: failures.slice(0, 5).map(({ event, ...f }) => ({ uniqueKey: event.uniqueKey, ...f })),
      },
      'ingest API rejected events; they are counted (conflict or invalid) and not retried',
    );
    for (const f of failures) {
      this.deps.reject([f.event], f.status, f.field !== undefined ? `${f.field}: ${f.reason}` : f.reason);
    }
  }
}
