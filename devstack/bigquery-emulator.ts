import path from 'node:path';
import { startProcess, waitForPort, type ManagedProcess } from './process.js';
import { bqEmulator, bqEmulatorHome } from './tools.js';

export interface BigQueryEmulator {
  apiEndpoint: string;
  process: ManagedProcess;
}

export async function startBigQueryEmulator(opts: {
  port: number;
  grpcPort: number;
  projectId: string;
  /** Folder for the emulator's DuckDB file; none means in memory. */
  dataDir?: string;
  logDir: string;
}): Promise<BigQueryEmulator> {
  const logFile = path.join(opts.logDir, 'bigquery-emulator.log');
  const args = [
    'start',
    '--rest-host', '127.0.0.1', '--rest-port', String(opts.port),
    '--grpc-host', '127.0.0.1', '--grpc-port', String(opts.grpcPort),
    '--project', opts.projectId,
    '--log-level', 'warning',
    '--log-format', 'json',
    ...(opts.dataDir ? ['--persistent', '--data-dir', opts.dataDir] : ['--ephemeral']),
  ];
  // HOME is the emulator's own: DuckDB finds the spatial extension bootstrap placed there and downloads nothing.
  const proc = startProcess('bigquery emulator', bqEmulator, args, {
    logFile,
    env: { ...process.env, HOME: bqEmulatorHome },
  });
  await waitForPort(proc, opts.port, 90_000, logFile);
  return { apiEndpoint: `http://127.0.0.1:${opts.port}`, process: proc };
}
