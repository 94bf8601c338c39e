import fs from 'node:fs';
import path from 'node:path';
import { setNiceness } from '../core/niceness.js';
import { cpuGroup, type CpuGroup } from './cpu-cap.js';
import { startProcess, waitForPort, type ManagedProcess } from './process.js';
import { bqEmulatorHome, bqEmulatorStart, venvPython } from './tools.js';

export interface BigQueryEmulator {
  apiEndpoint: string;
  process: ManagedProcess;
  /** Its cgroup, whose cap the ingest benchmark sets and lifts, or why none could be made; undefined when none was asked for. */
  cpuGroup?: CpuGroup | { unavailable: string };
}

export async function startBigQueryEmulator(opts: {
  port: number;
  grpcPort: number;
  projectId: string;
  /** Folder for the emulator's DuckDB file; none means in memory. */
  dataDir?: string;
  logDir: string;
  /** A niceness above 0 lets the services under test come first when the cores are shared (the ingest benchmark). */
  niceness?: number;
  /**
   * Run it in a cgroup of its own (devstack/cpu-cap.ts), uncapped until its owner sets a cap: the
   * ingest benchmark holds it to a share of a core while it measures latency, as a BigQuery that
   * runs on other machines would take none of this one's (docs/benchmarks.md).
   */
  cpuGroup?: boolean;
}): Promise<BigQueryEmulator> {
  const logFile = path.join(opts.logDir, 'bigquery-emulator.log');
  const args = [
    bqEmulatorStart,
    'start',
    '--rest-host', '127.0.0.1', '--rest-port', String(opts.port),
    '--grpc-host', '127.0.0.1', '--grpc-port', String(opts.grpcPort),
    '--project', opts.projectId,
    '--log-level', 'warning',
    '--log-format', 'json',
    ...(opts.dataDir ? ['--persistent', '--data-dir', opts.dataDir] : ['--ephemeral']),
  ];
  // HOME is the emulator's own: DuckDB finds the spatial extension bootstrap placed there and downloads nothing.
  // BQEMU_TIME_TRAVEL_RETENTION_DAYS=0: time travel, which Tally never uses, is off. The emulator
  // copied the whole table after every write for it (and kept the copies 7 days by default), so
  // every streaming insert cost a pass over the table; `bqemulator-start.py` skips those copies
  // when the retention is 0 (docs/benchmarks.md has what they cost).
  // Its working folder is its HOME too: DuckDB spills to `.tmp` there, not into the project.
  const proc = startProcess('bigquery emulator', venvPython, args, {
    logFile,
    cwd: bqEmulatorHome,
    env: { ...process.env, HOME: bqEmulatorHome, BQEMU_TIME_TRAVEL_RETENTION_DAYS: '0' },
  });
  if (opts.niceness && proc.child.pid !== undefined) lowerPriority(proc.child.pid, opts.niceness);
  await waitForPort(proc, opts.port, 90_000, logFile);
  // In its cgroup once it listens: a cap set then does not hold back its start-up (Python's imports).
  let group: BigQueryEmulator['cpuGroup'];
  let managed = proc;
  if (opts.cpuGroup && proc.child.pid !== undefined) {
    group = cpuGroup(proc.child.pid, `tally-bigquery-emulator-${proc.child.pid}`);
    if (!('unavailable' in group)) {
      const release = group.release;
      managed = { ...proc, stop: async (timeoutMs) => { await proc.stop(timeoutMs); release(); } };
    }
  }
  return { apiEndpoint: `http://127.0.0.1:${opts.port}`, process: managed, cpuGroup: group };
}

/**
 * Niceness of the process (every thread) and, on Linux with autogroups, of its autogroup: the emulator runs in a
 * session of its own, and the scheduler first shares the cores between sessions, then applies a
 * process's niceness only inside its session. Without the second step the niceness does nothing.
 */
function lowerPriority(pid: number, niceness: number): void {
  setNiceness(pid, niceness);
  try {
    fs.writeFileSync(`/proc/${pid}/autogroup`, String(niceness));
  } catch {
    // not Linux, or no autogroups: the process niceness is what there is
  }
}
