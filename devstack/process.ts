import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

/** A server process the dev stack started; `stop()` ends its whole process group. */
export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  stop(timeoutMs?: number): Promise<void>;
}

const running = new Set<ChildProcess>();

// If the parent dies without stopping its children, take them down with it: nothing is left behind.
process.once('exit', () => {
  for (const child of running) killGroup(child, 'SIGKILL');
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

export function startProcess(
  name: string,
  command: string,
  args: string[],
  opts: {
    env?: NodeJS.ProcessEnv;
    logFile: string;
    cwd?: string;
    /** The signal that stops it quickly and cleanly (Postgres: SIGINT, its "fast" shutdown). */
    stopSignal?: NodeJS.Signals;
    /** Run as this user (Postgres refuses to run as root). */
    user?: { uid: number; gid: number };
  },
): ManagedProcess {
  const log = fs.openSync(opts.logFile, 'a');
  // Own process group: a Ctrl-C in the terminal reaches the parent only, which stops children in order.
  const child = spawn(command, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    detached: true,
    stdio: ['ignore', log, log],
    ...(opts.user ?? {}),
  });
  fs.closeSync(log);
  running.add(child);
  child.once('exit', () => running.delete(child));
  return {
    name,
    child,
    async stop(timeoutMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      killGroup(child, opts.stopSignal ?? 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function assertPortFree(port: number, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', () =>
      reject(new Error(`port ${port} for ${what} is already in use: stop what holds it, or point Tally at your own ${what}`)),
    );
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

/** A server's port was taken by another process: something else answers there, or the server could not bind it. */
export class PortTakenError extends Error {}

/**
 * Starts a server with `start`, and again (three starts at most) when a start failed on a port in
 * use: it threw `PortTakenError`, or its own lines of the log (the log is appended across starts)
 * say "address already in use", as Postgres, Python and the Temporal CLI put it. `nextPorts` gives
 * the next start's ports (the same ones, for a server that collides with ports it picks itself);
 * without it, or after the third start, such a failure is thrown as a `PortTakenError`. `start`
 * stops what it started before it throws (`readyOrStopped`).
 */
export async function startAgainOnTakenPort<P, T>(
  logFile: string,
  ports: P,
  start: (ports: P) => Promise<T>,
  nextPorts?: () => Promise<P>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const logFrom = fs.statSync(logFile, { throwIfNoEntry: false })?.size ?? 0;
    try {
      return await start(ports);
    } catch (err) {
      const taken = err instanceof PortTakenError ? err
        : /address already in use/i.test(logSince(logFile, logFrom))
          ? new PortTakenError(`${(err as Error).message} (a port it needs is in use: its log says "address already in use")`, { cause: err })
          : undefined;
      if (!taken) throw err;
      if (!nextPorts || attempt >= 3) throw taken;
      ports = await nextPorts();
    }
  }
}

/** Waits for a started server to be ready; if it never is, stops it before passing the failure on. */
export async function readyOrStopped<T>(proc: ManagedProcess, ready: () => Promise<T>): Promise<T> {
  try {
    return await ready();
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

/** What was appended to the log after `from` bytes. */
export function logSince(logFile: string, from: number): string {
  try {
    return fs.readFileSync(logFile).subarray(from).toString('utf8');
  } catch {
    return '';
  }
}

/** Resolves once something accepts TCP connections on the port; fails early if the process dies. */
export async function waitForPort(proc: ManagedProcess, port: number, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`${proc.name} exited during start (code ${proc.child.exitCode}); see ${logFile}:\n${tail(logFile)}`);
    }
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`${proc.name} did not open port ${port} within ${timeoutMs} ms; see ${logFile}:\n${tail(logFile)}`);
}

export function tail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
