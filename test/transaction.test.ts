import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import pg from 'pg';
import { createPool, inTransaction } from '../db/pool.js';

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
