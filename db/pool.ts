import pg from 'pg';
import type { Logger } from '../core/logger.js';

// numeric(38,0) totals arrive as strings and stay strings: quantities never pass through floating point.
// bigint counts (int8) are safe as numbers up to 2^53, far beyond any day's event count.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
// `date` columns are BillingDays: keep the YYYY-MM-DD text rather than a local-time Date.
pg.types.setTypeParser(pg.types.builtins.DATE, (v) => v);

/**
 * Idle connections are kept for 5 minutes (pg's default is 10 s). A new connection costs a
 * backend, a SCRAM handshake, cold catalog caches and re-preparing the ingest statements, which a
 * request then waits for: an uneven load should not close and reopen them every few seconds.
 */
const IDLE_TIMEOUT_MS = 5 * 60_000;

/**
 * Runs `work` in one transaction on a client of its own: COMMIT when it returns, ROLLBACK when it
 * throws. A connection that cannot even roll back is closed rather than given back to the pool
 * mid-transaction. `begin` may set the isolation level, e.g. a read-only REPEATABLE READ snapshot.
 */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(begin);
    const result = await work(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (err) {
    const rolledBack = await client.query('ROLLBACK').then(() => true, () => false);
    client.release(!rolledBack);
    throw err;
  }
}

/**
 * A pool whose connections may be closed by Postgres (a restart, a failover, a terminated backend)
 * without ending the process: pg reports that as an 'error' event, on the pool for an idle
 * connection and on the client for one checked out, and an 'error' event nobody listens to is
 * thrown. An idle connection is dropped (and logged, given a logger); a checked-out one also fails
 * its query, whose caller answers for it (ingest with a 503).
 */
export function createPool(databaseUrl: string, max: number, logger?: Pick<Logger, 'warn'>): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max, connectionTimeoutMillis: 5_000, idleTimeoutMillis: IDLE_TIMEOUT_MS });
  pool.on('error', (err) => logger?.warn({ err }, 'an idle Postgres connection was closed; the pool opens another when needed'));
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND']);

/**
 * Whether an error means "Postgres cannot serve now, retry later" — the connection failed or
 * dropped, the server is starting or stopping, out of resources, or a transaction lost a
 * serialization race — as opposed to a bug or a broken schema, which retrying will not mend.
 */
export function isPostgresUnavailable(err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (NETWORK_ERRORS.has(code)) return true;
    // SQLSTATE classes: 08 connection exception, 57P operator intervention (shutdown, restart),
    // 53 insufficient resources; 40001 / 40P01 serialization failure and deadlock.
    if (/^(08|57P|53)/.test(code) || code === '40001' || code === '40P01') return true;
  }
  // pg's own words for a connection that dropped (mid-query, or before the next query on a client) or never came.
  return typeof message === 'string' && /Connection terminated|connection error and is not queryable|timeout exceeded when trying to connect/i.test(message);
}
