import fs from 'node:fs';
import os from 'node:os';

/**
 * Raises this process's niceness (no privilege needed to lower one's own priority). On Linux a
 * niceness belongs to each thread, and `os.setPriority` alone sets the calling thread's: every
 * thread running now (V8's and libuv's) is set, and threads started later inherit it.
 * Returns how many threads were set.
 */
export function lowerOwnPriority(niceness: number): number {
  const threads = fs.existsSync('/proc/self/task') ? fs.readdirSync('/proc/self/task').map(Number) : [0];
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
