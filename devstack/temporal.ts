import path from 'node:path';
import { readyOrStopped, startAgainOnTakenPort, startProcess, waitForPort, type ManagedProcess } from './process.js';
import { temporalCli } from './tools.js';

/** Search attributes operators use to find a customer's or a day's workflows in the Temporal UI. */
export const searchAttributes = { OrgId: 'Keyword', BillingDay: 'Keyword' } as const;

export interface TemporalDevServer {
  address: string;
  uiUrl: string;
  process: ManagedProcess;
}

export async function startTemporalDevServer(opts: {
  port: number;
  uiPort: number;
  /** SQLite file that keeps workflows across restarts; none means in memory. */
  dbFile?: string;
  logDir: string;
}): Promise<TemporalDevServer> {
  const logFile = path.join(opts.logDir, 'temporal.log');
  const args = [
    'server', 'start-dev',
    '--ip', '127.0.0.1',
    '--port', String(opts.port),
    '--ui-port', String(opts.uiPort),
    '--log-level', 'warn',
    // WAL roughly doubles the rate of workflow starts SQLite takes (measured: ~95/s → ~200/s on 2 cores).
    '--sqlite-pragma', 'journal_mode=wal',
    '--sqlite-pragma', 'synchronous=normal',
    ...Object.entries(searchAttributes).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
    ...(opts.dbFile ? ['--db-filename', opts.dbFile] : []),
  ];
  // The dev server picks free ports of its own for its internal services as it starts, and one
  // of them can be the port given it for the frontend, not bound yet: it then exits with "address
  // already in use" (seen once in a benchmark run). Its next start, on the same ports, picks other ones.
  return startAgainOnTakenPort(logFile, undefined, async () => {
    const proc = startProcess('temporal dev server', temporalCli, args, { logFile });
    return readyOrStopped(proc, async () => {
      await waitForPort(proc, opts.port, 60_000, logFile);
      await waitForPort(proc, opts.uiPort, 30_000, logFile);
      return { address: `127.0.0.1:${opts.port}`, uiUrl: `http://127.0.0.1:${opts.uiPort}`, process: proc };
    });
  }, async () => undefined);
}
