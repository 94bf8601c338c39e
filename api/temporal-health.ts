import type { Client } from '@temporalio/client';

/**
 * Whether Temporal answers, asked at most once a second. Ingest refuses (503) while it does not:
 * accepted batches wait in the Postgres outbox for the drainer workflow, and a producer should
 * not be told "accepted" while nothing could start that workflow again if it were lost.
 */
export class TemporalHealth {
  private last?: { at: number; error?: Error };
  private inFlight?: Promise<void>;

  constructor(private readonly client: Client, private readonly timeoutMs: number, private readonly cacheMs = 1_000) {}

  async check(): Promise<void> {
    if (this.last && Date.now() - this.last.at < this.cacheMs) {
      if (this.last.error) throw this.last.error;
      return;
    }
    this.inFlight ??= this.probe().finally(() => (this.inFlight = undefined));
    return this.inFlight;
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
