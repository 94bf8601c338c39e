import type { WireEvent } from './usage-event.js';

/**
 * The bounded buffer between addAmounts and the sender. It holds the events waiting to be sent
 * and the batch in flight; both count against the capacity, so memory stays bounded however long
 * the server is away. One sender takes batches out; it sleeps until there is a reason to send.
 */
export class EventBatcher {
  private queued: WireEvent[] = [];
  private inFlight: WireEvent[] = [];
  /** When the oldest waiting event arrived: a partial batch is sent once it has waited the flush interval. */
  private oldestQueuedAt = 0;
  private wake: (() => void) | undefined;

  constructor(
    readonly capacity: number,
    readonly batchSize: number,
  ) {}

  /** Events held: waiting plus in flight. */
  get size(): number {
    return this.queued.length + this.inFlight.length;
  }

  get waiting(): number {
    return this.queued.length;
  }

  /** Adds the event unless the buffer is full; false means it was not kept. O(1), never waits. */
  offer(event: WireEvent): boolean {
    if (this.size >= this.capacity) return false;
    this.queued.push(event);
    // Wake the sender only when it has something new to do: start timing a batch, or send a full one.
    if (this.queued.length === 1) {
      this.oldestQueuedAt = Date.now();
      this.notify();
    } else if (this.queued.length === this.batchSize) {
      this.notify();
    }
    return true;
  }

  /** Removes and returns the oldest event still waiting (never one in flight: its fate is the server's). */
  dropOldest(): WireEvent | undefined {
    return this.queued.shift();
  }

  /** How long until the waiting partial batch is due, given the flush interval; 0 if due now. */
  dueInMs(flushIntervalMs: number): number {
    return Math.max(0, this.oldestQueuedAt + flushIntervalMs - Date.now());
  }

  /** Moves the next batch (oldest first) into flight. */
  takeBatch(): WireEvent[] {
    const batch = this.queued.splice(0, this.batchSize);
    this.inFlight = batch;
    // The rest keep the old arrival time: they may go a little early, never late.
    return batch;
  }

  /** The batch in flight has its answer (or its final failure): it leaves the buffer. */
  settleBatch(): void {
    this.inFlight = [];
  }

  /** Empties the buffer, in-flight batch first, and returns what was in it. */
  drainAll(): WireEvent[] {
    const all = [...this.inFlight, ...this.queued];
    this.inFlight = [];
    this.queued = [];
    return all;
  }

  /** Resolves at the next notify() or after `ms` (never, if undefined). Only the sender waits. */
  waitForWork(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      if (ms !== undefined) {
        // Unref'd: a producer that exits without close() is not held open by an idle client.
        timer = setTimeout(() => this.wake?.(), ms);
        timer.unref();
      }
    });
  }

  notify(): void {
    this.wake?.();
  }
}
