import type { Client } from '@temporalio/client';

/**
 * Whether Temporal answers, asked at most once a second. Ingest refuses (503) while it does not:
 * accepted batches wait in the Postgres outbox for the drainer workflow, and a producer should
 * not be told "accepted" while nothing could start that workflow again if it were lost.
 *
 * Requests do not wait for the probe while the last answer was yes: once that answer is older
 * than `cacheMs`, the next check starts a probe and is answered from the last "yes" for up to
 * another `cacheMs` while the probe runs. Only a missing, failed or older answer makes a request
 * wait for the probe. Under load a probe takes 40–220 ms here, and every request arriving during
 * it used to wait that long (docs/benchmarks.md).
 *
 * `keepFresh()` checks twice every `cacheMs` in the background, which starts a probe once the
 * answer is older than `cacheMs`: the answer is then never older than 2 × `cacheMs` unless a probe
 * takes longer than half of `cacheMs`, so after a quiet spell the first requests of a burst do not
 * wait for a probe either. (Checking once every `cacheMs` would leave the answer just past
 * 2 × `cacheMs` for the length of every other probe.)
 */
export class TemporalHealth {
  private last?: { at: number; error?: Error };
  private inFlight?: Promise<void>;
  private timer?: NodeJS.Timeout;

  constructor(private readonly client: Client, private readonly timeoutMs: number, private readonly cacheMs = 1_000) {}

  /** A probe is under way (for tests). */
  get probing(): boolean {
    return this.inFlight !== undefined;
  }

  /** Keeps the answer fresh in the background until `stop()`; does not keep the process alive. */
  keepFresh(): void {
    this.timer ??= setInterval(() => void this.check().catch(() => undefined), this.cacheMs / 2).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async check(): Promise<void> {
    const last = this.last;
    const age = last ? Date.now() - last.at : Infinity;
    if (last && age < this.cacheMs) {
      if (last.error) throw last.error;
      return;
    }
    // Failures are answered by the awaited probe; the background one must not go unhandled.
    const probe = (this.inFlight ??= this.probe().finally(() => (this.inFlight = undefined)));
    if (last && !last.error && age < 2 * this.cacheMs) {
      probe.catch(() => undefined);
      return;
    }
    return probe;
  }

  private async probe(): Promise<void> {
    try {
      await this.client.connection.withDeadline(Date.now() + this.timeoutMs, () =>
        this.client.workflowService.getSystemInfo({}),
      );
      this.last = { at: Date.now() };
    } catch (err) {
      this.last = { at: Date.now(), error: err as Error };
      throw err;
    }
  }
}
