import pg from 'pg';

// numeric(38,0) totals arrive as strings and stay strings: quantities never pass through floating point.
// bigint counts (int8) are safe as numbers up to 2^53, far beyond any day's event count.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
// `date` columns are BillingDays: keep the YYYY-MM-DD text rather than a local-time Date.
pg.types.setTypeParser(pg.types.builtins.DATE, (v) => v);

export function createPool(databaseUrl: string, max: number): pg.Pool {
  return new pg.Pool({ connectionString: databaseUrl, max, connectionTimeoutMillis: 5_000 });
}
