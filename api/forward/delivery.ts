import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../core/logger.js';
import type { UsageEvent } from '../../core/usage-event.js';
import { ingestEvents, IngestUnavailableError, type IngestDeps, type IngestOutcome } from '../ingest.js';
import type { ForwardMessage } from './decode.js';
import type { FrameEncoding } from './framing.js';
import { recordRejection, usageEventFromRecord, type ForwardMetrics } from './records.js';

export type ForwardIngestDeps = IngestDeps;

type EventsMessage = Extract<ForwardMessage, { kind: 'events' }>;

/** The records of a read could not be stored; the connection must close without acknowledging them. */
export class DeliveryAbandoned extends Error {
  readonly code = 'FORWARD_DELIVERY_ABANDONED';
}

export interface DeliveryOptions {
  deps: ForwardIngestDeps;
  metrics: ForwardMetrics;
  /** How long to keep retrying while Postgres or Temporal is down before giving up (default 30 s). */
  retryBudgetMs: number;
  /** At most this many events per `ingestEvents` call: one durable batch, one workflow. */
  maxEventsPerCall: number;
}

export type SendAck = (chunk: string, encoding: FrameEncoding) => Promise<void>;

/**
 * Hands a connection's messages to `ingestEvents`, in order, and acknowledges each message that
 * asked for it (`option.chunk`) only once every one of its records has its final answer: accepted
 * and duplicate records are then durable; invalid and conflicting ones are logged and counted,
 * since resending them could never change the answer.
 *
 * Messages that arrived together are ingested together (up to `maxEventsPerCall` events): the Go
 * client sends one record per message, and one workflow per record could not keep up with a
 * busy producer (DESIGN.md, Temporal conventions).
 */
export function createDelivery(options: DeliveryOptions) {
  const { deps, metrics, retryBudgetMs, maxEventsPerCall } = options;

  async function deliver(messages: readonly ForwardMessage[], sendAck: SendAck, log: Logger): Promise<void> {
    const pending = messages.filter((m): m is EventsMessage => m.kind === 'events').map((m) => ({ message: m, events: toEvents(m, log) }));
    let batch: typeof pending = [];
    let size = 0;
    for (const [i, p] of pending.entries()) {
      if (batch.length > 0 && size + p.events.length > maxEventsPerCall) {
        await flush(batch, pending.slice(i), sendAck, log);
        batch = [];
        size = 0;
      }
      batch.push(p);
      size += p.events.length;
    }
    if (batch.length > 0) await flush(batch, [], sendAck, log);
  }

  async function flush(
    batch: { message: EventsMessage; events: UsageEvent[] }[],
    later: { events: UsageEvent[] }[],
    sendAck: SendAck,
    log: Logger,
  ): Promise<void> {
    const events = batch.flatMap((p) => p.events);
    // Only a single message larger than the limit takes more than one call.
    for (let start = 0; start < events.length; start += maxEventsPerCall) {
      const slice = events.slice(start, start + maxEventsPerCall);
      let outcome: IngestOutcome;
      try {
        outcome = await ingestWithRetry(slice, log);
      } catch (err) {
        const lost = events.length - start + later.reduce((n, p) => n + p.events.length, 0);
        metrics.records.inc({ status: 'lost' }, lost);
        // A sender that asked for acks resends these. A JSON-mode Go client has no acks: for it
        // these records are gone, which is why the retries above last as long as they do.
        log.error(
          { err, lost, chunks: batch.flatMap((p) => (p.message.option.chunk ? [p.message.option.chunk] : [])) },
          `FORWARD RECORDS LOST: ${lost} records could not be stored; closing the connection without ack (senders without acks will not resend)`,
        );
        throw new DeliveryAbandoned(`${lost} records could not be stored: ${(err as Error).message}`, { cause: err });
      }
      account(outcome, slice, log);
    }
    for (const { message } of batch) {
      if (message.option.chunk !== undefined) await sendAck(message.option.chunk, message.encoding);
    }
  }

  // Postgres or Temporal down: nothing was kept, so the same call is safe to repeat. Backoff with
  // jitter, so that the senders of many connections do not retry in step.
  async function ingestWithRetry(events: UsageEvent[], log: Logger): Promise<IngestOutcome> {
    const deadline = Date.now() + retryBudgetMs;
    let delayMs = 200;
    for (let attempt = 1; ; attempt++) {
      try {
        return await ingestEvents(events, deps);
      } catch (err) {
        if (!(err instanceof IngestUnavailableError)) throw err;
        const left = deadline - Date.now();
        if (left <= 0) throw err;
        const waitMs = Math.min(left, Math.round(delayMs * (0.5 + Math.random() / 2)));
        log.warn({ dependency: err.dependency, reason: err.message, attempt, retryInMs: waitMs, events: events.length },
          'ingest unavailable; holding the ack and retrying');
        await sleep(waitMs);
        delayMs = Math.min(delayMs * 2, 5_000);
      }
    }
  }

  function toEvents(message: EventsMessage, log: Logger): UsageEvent[] {
    const events: UsageEvent[] = [];
    for (const [index, entry] of message.entries.entries()) {
      const mapped = usageEventFromRecord(entry.record, entry.timeMs);
      if (mapped.ok) {
        events.push(mapped.event);
      } else {
        metrics.records.inc({ status: 'invalid' });
        log.warn({ tag: message.tag, mode: message.mode, index, uniqueKey: keyOf(entry.record), field: mapped.field, reason: mapped.reason },
          'forward record rejected');
      }
    }
    return events;
  }

  function account(outcome: IngestOutcome, events: UsageEvent[], log: Logger): void {
    const counts = new Map<string, number>();
    for (const r of outcome.results) {
      counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
      if (r.status === 'invalid') {
        log.warn({ uniqueKey: keyOf(events[r.index]), ...recordRejection(r.field, r.reason) }, 'forward record rejected');
      } else if (r.status === 'conflict') {
        log.warn({ uniqueKey: r.uniqueKey, field: 'unique_key', reason: 'already stored with another payload; this one is not kept' },
          'forward record rejected');
      }
    }
    for (const [status, n] of counts) metrics.records.inc({ status }, n);
    if (outcome.batchId) log.debug({ batchId: outcome.batchId, workflowId: outcome.workflowId, events: events.length }, 'forward records stored');
  }

  return { deliver };
}

function keyOf(record: unknown): string | undefined {
  const key = (record as { unique_key?: unknown; uniqueKey?: unknown } | null | undefined);
  const value = key?.unique_key ?? key?.uniqueKey;
  return typeof value === 'string' ? value : undefined;
}
