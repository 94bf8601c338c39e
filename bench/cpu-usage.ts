// CPU time per component of the stack over a benchmark phase, read from /proc (Linux): the
// profile the ingest benchmark prints next to its figures, so a reader sees where the cores went.
import type { ProcStat } from '../devstack/process-table.js';

/** clock ticks per second: Linux reports utime/stime in USER_HZ, which is 100 on every common build. */
const TICKS_PER_SECOND = 100;

/**
 * Seconds of CPU each component used between two snapshots. A component is a set of root pids
 * (with all their descendants) or a process name; what matches nothing is "other".
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
  const seconds = new Map<string, number>();
  for (const [pid, now] of after) {
    const delta = now.ticks - (before.get(pid)?.ticks ?? 0);
    if (delta <= 0) continue;
    const name = owner(pid);
    seconds.set(name, (seconds.get(name) ?? 0) + delta / TICKS_PER_SECOND);
  }
  return [...components.map((c) => c.name), 'other']
    .map((name) => ({ name, seconds: seconds.get(name) ?? 0 }))
    .filter((c) => c.seconds > 0);
}
