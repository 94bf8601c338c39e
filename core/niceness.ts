import fs from 'node:fs';
import os from 'node:os';

/**
 * Sets the niceness of a process (raising one's own needs no privilege). On Linux a niceness
 * belongs to each thread, and `os.setPriority(pid)` sets only the thread whose id is the pid:
 * every thread running now (V8's, libuv's, DuckDB's) is set, and threads started later inherit it.
 * Returns how many threads were set.
 */
export function setNiceness(pid: number, niceness: number): number {
  const tasks = `/proc/${pid}/task`;
  const threads = fs.existsSync(tasks) ? fs.readdirSync(tasks).map(Number) : [pid];
  for (const tid of threads) {
    try {
      os.setPriority(tid, niceness);
    } catch (err) {
      // A thread that ended between the listing and now.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
  return threads.length;
}
