import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cpuControllerRoot, cpuGroup, type CpuGroup } from '../devstack/cpu-cap.js';
import { eventually } from './support/eventually.js';

// The ingest benchmark holds the BigQuery emulator to a share of a core while it measures latency
// (bench/ingest.ts). Where cgroups can be written (Linux, as root), the cap must really hold.
const writable = process.getuid?.() === 0 && cpuControllerRoot() !== undefined;

describe.runIf(writable)('cpuGroup', () => {
  it('moves a process into its own cgroup, caps it, lifts the cap, and leaves nothing behind', async () => {
    // A process that would take a whole core.
    const busy = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => busy.once('exit', resolve));
    let group: CpuGroup | undefined;
    try {
      const made = cpuGroup(busy.pid!, `tally-test-${process.pid}`);
      if ('unavailable' in made) throw new Error(made.unavailable);
      group = made;
      expect(fs.readFileSync(path.join(group.dir, 'cgroup.procs'), 'utf8').split('\n')).toContain(String(busy.pid));
      // Of the idle class where the kernel has it (Linux 5.15 and later), so that it gives way at once.
      const idleFile = path.join(group.dir, 'cpu.idle');
      expect(group.idle).toBe(fs.existsSync(idleFile)); // this machine's kernel lets it be set
      if (fs.existsSync(idleFile)) expect(fs.readFileSync(idleFile, 'utf8').trim()).toBe('1');
      const v1 = cpuControllerRoot()!.version === 1;
      const quota = () => fs.readFileSync(path.join(group!.dir, v1 ? 'cpu.cfs_quota_us' : 'cpu.max'), 'utf8').trim();
      const throttled = () => Number(/nr_throttled (\d+)/.exec(fs.readFileSync(path.join(group!.dir, 'cpu.stat'), 'utf8'))?.[1]);
      expect(throttled()).toBe(0); // uncapped until asked

      group.limit(0.1);
      expect(quota()).toBe(v1 ? '1000' : '1000 10000');
      // Held back in its periods of 10 ms: the kernel counts each period it was stopped in.
      await eventually(async () => expect(throttled()).toBeGreaterThan(5));

      group.limit(null);
      expect(quota()).toBe(v1 ? '-1' : 'max 10000');
    } finally {
      busy.kill('SIGKILL');
      await exited;
      group?.release();
    }
    expect(fs.existsSync(group!.dir)).toBe(false);
  });

  it('answers why, and changes nothing, where the cgroup cannot be made', () => {
    // A parent folder that does not exist stands for a tree this process may not write.
    const made = cpuGroup(process.pid, `tally-missing-${process.pid}/child`);
    expect(made).toEqual({ unavailable: expect.stringMatching(/^cannot make .*tally-missing-\d+\/child: ENOENT/) });
    expect(fs.existsSync(path.join(cpuControllerRoot()!.root, `tally-missing-${process.pid}`))).toBe(false);
    expect(fs.readFileSync('/proc/self/cgroup', 'utf8')).not.toContain('tally-missing');
  });
});
