// CPU time per component of the stack over a benchmark phase, read from /proc (Linux): the
// profile the ingest benchmark prints next to its figures, so a reader sees where the cores went.
import fs from 'node:fs';
import os from 'node:os';
import type { ProcStat } from '../devstack/process-table.js';

/** clock ticks per second: Linux reports utime/stime in USER_HZ, which is 100 on every common build. */
const TICKS_PER_SECOND = 100;

/**
 * Seconds of CPU each component used between two snapshots. A component is a set of root pids
 * (with all their descendants) or a process name; what matches nothing is "other".
 *
 * A process's ticks include its reaped children's, so that one that starts and ends between the
 * snapshots (a Postgres backend or autovacuum worker) is counted. One that was already running at
 * the first snapshot and ends before the second is counted in its parent as a whole, with what it
 * used before the window too: that part, its ticks at the first snapshot, is taken off again. Without
 * that, an autovacuum worker that had vacuumed the ledger for seconds before a run and ended inside
 * it put Postgres at 1.29 cores of two (the run of 2026-12-04 18:56).
 */
export function cpuByComponent(
  before: Map<number, ProcStat>,
  after: Map<number, ProcStat>,
  components: { name: string; pids?: number[]; comm?: RegExp }[],
): { name: string; seconds: number }[] {
  // A process (or an ancestor) named like a component is that component, before pid trees:
  // the stack's servers are children of the benchmark process, which is itself a component.
  const owner = (pid: number): string => {
    for (let p: ProcStat | undefined = after.get(pid); p; p = p.ppid > 1 ? after.get(p.ppid) : undefined) {
      const byComm = components.find((c) => c.comm?.test(p!.comm));
      if (byComm) return byComm.name;
    }
    for (let p: ProcStat | undefined = after.get(pid); p; p = p.ppid > 1 ? after.get(p.ppid) : undefined) {
      const byPid = components.find((c) => c.pids?.includes(p!.pid));
      if (byPid) return byPid.name;
    }
    return 'other';
  };
  const ticks = new Map<string, number>();
  const add = (name: string, n: number) => ticks.set(name, (ticks.get(name) ?? 0) + n);
  for (const [pid, now] of after) {
    const delta = now.ticks - (before.get(pid)?.ticks ?? 0);
    if (delta > 0) add(owner(pid), delta);
  }
  for (const [pid, then] of before) {
    // Gone, and reaped by a parent still here (not one it was handed to, such as init).
    if (after.has(pid) || then.ppid <= 1 || !after.has(then.ppid)) continue;
    add(owner(then.ppid), -then.ticks);
  }
  const seconds = new Map<string, number>();
  for (const [name, n] of ticks) if (n > 0) seconds.set(name, n / TICKS_PER_SECOND);
  return [...components.map((c) => c.name), 'other']
    .map((name) => ({ name, seconds: seconds.get(name) ?? 0 }))
    .filter((c) => c.seconds > 0);
}

/** The machine's steal time so far, in ticks (/proc/stat): time its virtual cores were ready but the host ran something else. */
function stealTicks(): number | undefined {
  try {
    const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
    return cpu[0] === 'cpu' && cpu[8] !== undefined ? Number(cpu[8]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Measures the host's steal over a phase: call at its start, and call the answer at its end with
 * the phase's seconds, for the share of the cores' time stolen (0.05: 5 %), or undefined off Linux.
 */
export function stealOver(): (seconds: number) => number | undefined {
  const before = stealTicks();
  return (seconds) => {
    const after = stealTicks();
    if (before === undefined || after === undefined || seconds <= 0) return undefined;
    return (after - before) / TICKS_PER_SECOND / (seconds * os.cpus().length);
  };
}
