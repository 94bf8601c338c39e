import fs from 'node:fs';
import path from 'node:path';
import { setNiceness } from '../core/niceness.js';
import { cpuGroup, type CpuGroup } from './cpu-cap.js';
import { PortTakenError, readyOrStopped, startAgainOnTakenPort, startProcess, tail, waitForPort, type ManagedProcess } from './process.js';
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
  /**
   * Other ports to try when another process answers on the ones given (`PortTakenError`): the
   * stack picks free ports before it starts its servers, and a server that starts faster (the
   * Temporal dev server picks ports for its internal services as it starts) can take one of the
   * emulator's first, while Python is still loading. None: the error is the caller's.
   */
  choosePorts?: () => Promise<{ port: number; grpcPort: number }>;
}): Promise<BigQueryEmulator> {
  const logFile = path.join(opts.logDir, 'bigquery-emulator.log');
  return startAgainOnTakenPort(logFile, { port: opts.port, grpcPort: opts.grpcPort }, (ports) => startOnce({ ...opts, ...ports }, logFile), opts.choosePorts);
}

async function startOnce(opts: Parameters<typeof startBigQueryEmulator>[0], logFile: string): Promise<BigQueryEmulator> {
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
  await readyOrStopped(proc, async () => {
    await waitForPort(proc, opts.port, 90_000, logFile);
    await answersAsEmulator(proc, opts.port, opts.projectId, logFile);
  });
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
 * Waits until the REST port answers a BigQuery request as the emulator does. That the port accepts
 * connections is not enough: when another process took it first (once, a gRPC server of the
 * Temporal dev server), every test's request got "Parse Error: Expected HTTP/".
 */
async function answersAsEmulator(proc: ManagedProcess, port: number, projectId: string, logFile: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  let last = '';
  for (;;) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`bigquery emulator exited during start (code ${proc.child.exitCode}); see ${logFile}:\n${tail(logFile)}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/bigquery/v2/projects/${encodeURIComponent(projectId)}/datasets`, { signal: AbortSignal.timeout(5_000) });
      const body = (await res.json().catch(() => undefined)) as { kind?: unknown } | undefined;
      if (res.ok && body?.kind === 'bigquery#datasetList') return;
      last = `HTTP ${res.status}, kind ${JSON.stringify(body?.kind)}`;
    } catch (err) {
      last = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
    }
    if (Date.now() > deadline) {
      throw new PortTakenError(`port ${port} accepts connections but does not answer as the BigQuery emulator (${last}): another process holds it`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
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
