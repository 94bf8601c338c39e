import fs from 'node:fs';

/** A process as /proc/<pid>/stat tells it (Linux). */
export interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  /** CPU time used, in clock ticks: user + system, its own and its reaped children's. */
  ticks: number;
}

/** Every process now running, by pid; empty off Linux. */
export function processTable(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  if (process.platform !== 'linux') return out;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone since the listing
    }
    // comm is in parentheses and may hold spaces: the fields after the last ')' are positional.
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const fields = text.slice(close + 2).split(' ');
    // fields[0] is state (field 3); ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
    const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    out.set(Number(entry), { pid: Number(entry), ppid: Number(fields[1]), comm, ticks });
  }
  return out;
}

/** The pids whose parent is `pid`. */
export function childrenOf(pid: number, table = processTable()): number[] {
  return [...table.values()].filter((p) => p.ppid === pid).map((p) => p.pid);
}
