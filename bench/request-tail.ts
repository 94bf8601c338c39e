// Where the slow requests of a half-load run spent their time, as far as the stack itself tells:
// the API's metrics (the whole request; Postgres's step of it, the statement and its commit; the
// processes' event-loop delay) and Postgres's WAL statistics (how many flushes, how long they
// took). Read before and after a run; the differences are the run's. The ingest benchmark prints
// them per round, so that a round whose p99 missed can be told apart: slow inside the API's own
// work, waiting for its process to begin it, or waiting on Postgres and the disk.
import type pg from 'pg';

/** Cumulative counters at one moment. */
interface TailCounters {
  /** POST /v1/events answered 200 that took longer than 50 ms in the API. */
  requestsOver50: number;
  /** Postgres's step of a request (tally_ingest_store_duration_seconds), over 25 and 50 ms. */
  storesOver25: number;
  storesOver50: number;
  /** pg_stat_wal: flushes of the WAL, their total time (track_wal_io_timing) and bytes written. */
  walSyncs: number;
  walSyncMs: number;
  walBytes: number;
  /** The API processes' event-loop delay since the previous scrape, in ms. */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

export interface RequestTail {
  /** Requests the API itself took more than 50 ms over (from taking the request to the answer sent). */
  apiOver50: number;
  /** Requests whose Postgres step took more than 25 ms, and more than 50 ms. */
  storeOver25: number;
  storeOver50: number;
  /** WAL flushes per second over the run, their mean time in ms, and MB of WAL per second. */
  walSyncsPerSecond: number;
  walSyncMeanMs: number;
  walMBPerSecond: number;
  /**
   * The API processes' event-loop delay over the run, in ms: its 99th percentile (the mean of the
   * processes') and its maximum. How long a request that arrived could wait for its process to
   * begin it. Each scrape of /metrics restarts these (prom-client), so the one before the run does.
   */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

/** A gauge's value, or NaN when the metrics lack it. */
function gauge(lines: readonly string[], name: string): number {
  const line = lines.find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.slice(name.length + 1));
}

/** Samples of one histogram's cumulative buckets whose labels match, summed by bucket bound. */
function buckets(lines: readonly string[], name: string, labels: string[]): Map<string, number> {
  const sums = new Map<string, number>();
  for (const line of lines) {
    if (!line.startsWith(`${name}_bucket{`) || !labels.every((l) => line.includes(l))) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (le !== undefined && Number.isFinite(value)) sums.set(le, (sums.get(le) ?? 0) + value);
  }
  return sums;
}

async function counters(apiUrl: string, db: pg.Client): Promise<TailCounters> {
  const metrics = (await (await fetch(`${apiUrl}/metrics`)).text()).split('\n');
  const requests = buckets(metrics, 'tally_api_request_duration_seconds', ['method="POST"', 'route="/v1/events"', 'status="200"']);
  const stores = buckets(metrics, 'tally_ingest_store_duration_seconds', []);
  const { rows } = await db.query<{ syncs: string; sync_ms: number; bytes: string }>(
    'SELECT wal_sync AS syncs, wal_sync_time AS sync_ms, wal_bytes AS bytes FROM pg_stat_wal',
  );
  const storesAll = stores.get('+Inf') ?? 0;
  return {
    requestsOver50: (requests.get('+Inf') ?? 0) - (requests.get('0.05') ?? 0),
    storesOver25: storesAll - (stores.get('0.025') ?? 0),
    storesOver50: storesAll - (stores.get('0.05') ?? 0),
    walSyncs: Number(rows[0]!.syncs),
    walSyncMs: Number(rows[0]!.sync_ms),
    walBytes: Number(rows[0]!.bytes),
    loopDelayP99Ms: gauge(metrics, 'tally_api_nodejs_eventloop_lag_p99_seconds') * 1000,
    loopDelayMaxMs: gauge(metrics, 'tally_api_nodejs_eventloop_lag_max_seconds') * 1000,
  };
}

/**
 * Turns on the timing of WAL flushes in pg_stat_wal (`track_wal_io_timing`, off by default: two
 * clock reads per WAL write and flush) for the benchmark's own Postgres.
 */
export async function timeWalFlushes(db: pg.Client): Promise<void> {
  await db.query('ALTER SYSTEM SET track_wal_io_timing = on');
  await db.query('SELECT pg_reload_conf()');
}

/**
 * Call at a run's start; call the answer at its end with the run's seconds. Postgres's statistics
 * reach pg_stat_wal within a second of a transaction, so a run of many seconds is read whole.
 */
export async function requestTailOver(apiUrl: string, db: pg.Client): Promise<(seconds: number) => Promise<RequestTail>> {
  const before = await counters(apiUrl, db);
  return async (seconds) => {
    // Postgres's backends send their WAL statistics at most once a second.
    await new Promise((r) => setTimeout(r, 1100));
    const after = await counters(apiUrl, db);
    const syncs = after.walSyncs - before.walSyncs;
    return {
      apiOver50: after.requestsOver50 - before.requestsOver50,
      storeOver25: after.storesOver25 - before.storesOver25,
      storeOver50: after.storesOver50 - before.storesOver50,
      walSyncsPerSecond: syncs / seconds,
      walSyncMeanMs: syncs > 0 ? (after.walSyncMs - before.walSyncMs) / syncs : 0,
      walMBPerSecond: (after.walBytes - before.walBytes) / 1e6 / seconds,
      loopDelayP99Ms: after.loopDelayP99Ms,
      loopDelayMaxMs: after.loopDelayMaxMs,
    };
  };
}
