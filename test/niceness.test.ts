import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../devstack/tools.js';

// The worker and the benchmark's emulator give way to the API (WORKER_NICENESS). On Linux a niceness is a
// thread's, so the check reads every thread of a fresh process, including those started after.
describe.runIf(process.platform === 'linux')('setNiceness', () => {
  it('sets every thread of the process, and the threads started after it inherit', () => {
    const script = `
      import fs from 'node:fs';
      import { Worker } from 'node:worker_threads';
      import { setNiceness } from './core/niceness.ts';
      const set = setNiceness(process.pid, 7);
      // A thread started after the call.
      const later = new Worker('setTimeout(() => {}, 60000)', { eval: true });
      await new Promise((resolve) => later.once('online', resolve));
      const niceness = fs.readdirSync('/proc/self/task').map((tid) =>
        Number(fs.readFileSync('/proc/self/task/' + tid + '/stat', 'utf8').split(') ')[1].split(' ')[16]));
      console.log(JSON.stringify({ set, niceness }));
      await later.terminate();`;
    const out = execFileSync(path.join(projectRoot, 'node_modules', '.bin', 'tsx'), ['--input-type=module', '-e', script], { cwd: projectRoot, encoding: 'utf8' });
    const { set, niceness } = JSON.parse(out.trim().split('\n').at(-1)!) as { set: number; niceness: number[] };
    expect(set).toBeGreaterThan(1);
    expect(niceness.length).toBeGreaterThan(set);
    expect(new Set(niceness)).toEqual(new Set([7]));
  });
});
