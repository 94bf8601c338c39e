import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import pg from 'pg';
import { createPool, inTransaction, isPostgresUnavailable } from '../db/pool.js';
import type { Logger } from '../core/logger.js';
import { eventually } from './support/eventually.js';

// db/pool.ts's inTransaction on the real Postgres: a pool of one connection shows whether a
// failed transaction hands back a connection that still works.

let pool: pg.Pool;
const table = `tx_probe_${process.pid}`;

beforeAll(async () => {
  pool = createPool(inject('stackEnv').DATABASE_URL!, 1);
  await pool.query(`CREATE TABLE ${table} (n int PRIMARY KEY)`);
});
afterAll(async () => {
  await pool?.query(`DROP TABLE IF EXISTS ${table}`);
  await pool?.end();
});

describe('inTransaction', () => {
  it('commits what the work wrote and answers its result', async () => {
    expect(await inTransaction(pool, async (c) => (await c.query(`INSERT INTO ${table} VALUES (1) RETURNING n`)).rows[0].n)).toBe(1);
    expect((await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(1);
  });

  it('rolls back when the work fails, even after a failed statement, and the connection works again', async () => {
    await expect(inTransaction(pool, async (c) => {
      await c.query(`INSERT INTO ${table} VALUES (2)`);
      await c.query(`INSERT INTO ${table} VALUES (1)`); // duplicate key: the transaction is aborted
    })).rejects.toMatchObject({ code: '23505' });
    // The pool's only connection: it must not come back inside the aborted transaction.
    expect((await pool.query(`SELECT array_agg(n ORDER BY n) AS ns FROM ${table}`)).rows[0].ns).toEqual([1]);
  });
});

describe('a connection Postgres closes', () => {
  // Each on a pool of its own; an 'error' event nobody hears would fail this file as an unhandled error.
  const terminate = (pid: number) => pool.query('SELECT pg_terminate_backend($1)', [pid]);

  it('mid-query: the query fails as an outage, so does the next one on that client, the process goes on, and the pool serves again', async () => {
    const own = createPool(inject('stackEnv').DATABASE_URL!, 1);
    try {
      const client = await own.connect();
      let lost: unknown, next: unknown;
      try {
        const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
        // Its failure is taken at once: it may come while the line below still waits.
        const sleeping = client.query('SELECT pg_sleep(30)').then(() => undefined, (err: unknown) => err);
        await terminate(pid);
        lost = await sleeping;
        // The socket's end, after the query's error, while the client is still checked out.
        await new Promise((r) => setTimeout(r, 200));
        next = await client.query('SELECT 1').then(() => undefined, (err: unknown) => err);
      } finally {
        client.release(true);
      }
      expect(isPostgresUnavailable(lost)).toBe(true);
      expect((next as Error).message).toMatch(/not queryable/);
      expect(isPostgresUnavailable(next)).toBe(true);
      expect((await own.query<{ n: number }>('SELECT 1 AS n')).rows[0]!.n).toBe(1);
    } finally {
      await own.end();
    }
  });

  it('while idle: the pool logs it, drops it, and serves again', async () => {
    const warned: string[] = [];
    const own = createPool(inject('stackEnv').DATABASE_URL!, 1, { warn: (_: unknown, message: string) => void warned.push(message) } as Pick<Logger, 'warn'>);
    try {
      const pid = (await own.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await terminate(pid);
      await eventually(async () => expect(warned).toEqual([expect.stringContaining('idle Postgres connection was closed')]), 5_000);
      const again = (await own.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      expect(again).not.toBe(pid);
    } finally {
      await own.end();
    }
  });
});
