import fs from 'node:fs';
import path from 'node:path';

/** A process in a cgroup of its own, with the lowest weight and a cap that can be set and lifted. */
export interface CpuGroup {
  /** The cgroup's folder. */
  readonly dir: string;
  /**
   * Whether the cgroup is of the idle class (`cpu.idle`, Linux 5.15 and later): its tasks give way
   * at once to any other task that wakes, which the lowest weight alone does not make them do.
   */
  readonly idle: boolean;
  /** Where it is, for people: "cgroup v1 /sys/fs/cgroup/cpu/tally-…". */
  readonly description: string;
  /** Holds the process to `cores` of CPU time from now on; null lifts the cap. */
  limit(cores: number | null): void;
  /** Removes the cgroup once the process has exited (a cgroup with processes in it stays). */
  release(): void;
}

/** Short periods: a capped process runs in slices of a few milliseconds, not in 25 ms bursts of a 100 ms period. */
const PERIOD_US = 10_000;

/** Where the cgroup cpu controller is mounted (v1: `/sys/fs/cgroup/cpu`; v2: the unified tree), if anywhere. */
export function cpuControllerRoot(): { root: string; version: 1 | 2 } | undefined {
  const v1 = ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct'].find((dir) => fs.existsSync(path.join(dir, 'cpu.cfs_quota_us')));
  if (v1) return { root: v1, version: 1 };
  return fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? { root: '/sys/fs/cgroup', version: 2 } : undefined;
}

/**
 * Moves `pid` (all its threads, and the processes and threads it starts later) into a new cgroup
 * named `name`, with the lowest CPU weight and, where the kernel has it, of the idle class,
 * uncapped until `limit` is called. Where no cgroup can be made (not Linux, no cpu controller, no
 * permission) it answers why not, and nothing is changed. Linux's cgroup v1 (`/sys/fs/cgroup/cpu`) and v2 are both handled.
 */
export function cpuGroup(pid: number, name: string): CpuGroup | { unavailable: string } {
  const found = cpuControllerRoot();
  if (!found) return { unavailable: 'no cgroup cpu controller found' };
  const v1 = found.version === 1;
  const dir = path.join(found.root, name);
  try {
    fs.mkdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return { unavailable: `cannot make ${dir}: ${(err as Error).message}` };
  }
  const release = () => {
    try {
      fs.rmdirSync(dir);
    } catch {
      // still has processes, or already gone
    }
  };
  const write = (file: string, value: string) => fs.writeFileSync(path.join(dir, file), value);
  let idle = false;
  try {
    if (v1) {
      write('cpu.cfs_period_us', String(PERIOD_US));
      write('cpu.shares', '2');
    } else {
      write('cpu.weight', '1');
    }
    // At the lowest weight alone, traces on the benchmark's machine (Linux 6.18, a 4 ms tick) saw
    // the emulator run in slices of 4-9 ms while woken API and Postgres tasks waited for a core,
    // and take 0.75 of the two cores over an uncapped half load (docs/benchmarks.md). Not
    // essential: a kernel without `cpu.idle` (before 5.15) refuses the write, and the weight and
    // the cap still hold.
    try {
      write('cpu.idle', '1');
      idle = true;
    } catch {
      // no idle class here
    }
    write('cgroup.procs', String(pid));
  } catch (err) {
    release();
    return { unavailable: `cannot set up ${dir}: ${(err as Error).message}` };
  }
  return {
    dir,
    idle,
    description: `cgroup ${v1 ? 'v1' : 'v2'} ${dir}`,
    limit(cores) {
      const quota = cores === null ? null : Math.max(1000, Math.round(cores * PERIOD_US));
      if (v1) write('cpu.cfs_quota_us', quota === null ? '-1' : String(quota));
      else write('cpu.max', `${quota ?? 'max'} ${PERIOD_US}`);
    },
    release,
  };
}
