import { describe, expect, it } from 'vitest';
import { cpuByComponent } from '../bench/cpu-usage.js';
import type { ProcStat } from '../devstack/process-table.js';

// The ingest benchmark's table of where the cores went (bench/cpu-usage.ts), from two /proc snapshots.

const table = (...procs: ProcStat[]) => new Map(procs.map((p) => [p.pid, p]));
const proc = (pid: number, ppid: number, comm: string, ticks: number): ProcStat => ({ pid, ppid, comm, ticks });
const components = [{ name: 'Postgres', comm: /^postgres$/ }, { name: 'API', pids: [10] }];

describe('CPU by component', () => {
  it('counts a child that ended within the window once, for its time within the window only', () => {
    // The postmaster (100) reaps an autovacuum worker (101) that had used 3 s before the window
    // and 1 s in it: its 4 s arrive in the postmaster's ticks, of which 1 s belongs to the window.
    const before = table(proc(100, 1, 'postgres', 1_000), proc(101, 100, 'postgres', 300), proc(10, 1, 'node', 500));
    const after = table(proc(100, 1, 'postgres', 1_000 + 50 + 400), proc(10, 1, 'node', 700));
    expect(cpuByComponent(before, after, components)).toEqual([{ name: 'Postgres', seconds: 1.5 }, { name: 'API', seconds: 2 }]);
  });

  it('counts a child that started and ended within the window, and one still running', () => {
    const before = table(proc(100, 1, 'postgres', 1_000), proc(102, 100, 'postgres', 100));
    const after = table(proc(100, 1, 'postgres', 1_000 + 250), proc(102, 100, 'postgres', 180), proc(11, 10, 'node', 30), proc(10, 1, 'node', 0));
    expect(cpuByComponent(before, after, components)).toEqual([{ name: 'Postgres', seconds: 3.3 }, { name: 'API', seconds: 0.3 }]);
  });

  it('takes nothing off for a process whose parent is gone too, or that init took over', () => {
    // 200 and 201 (not a component's) end in the window; "other" still counts the 0.3 s of 400,
    // a process that began in it: their earlier ticks are in no parent here to take them off from.
    const before = table(proc(200, 1, 'worker', 100), proc(201, 200, 'worker', 50), proc(300, 1, 'postgres', 10));
    const after = table(proc(300, 1, 'postgres', 20), proc(400, 1, 'sh', 30));
    expect(cpuByComponent(before, after, components)).toEqual([{ name: 'Postgres', seconds: 0.1 }, { name: 'other', seconds: 0.3 }]);
  });
});
