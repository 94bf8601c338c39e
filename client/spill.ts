import fs from 'node:fs';
import path from 'node:path';
import type { WireEvent } from './usage-event.js';

/** Warnings the spill store has to give; the client's logger fits. */
interface SpillLogger {
  warn(obj: object, msg: string): void;
}

/** One spill file being replayed: its events, and how many of them the server has answered. */
export interface SpillReplay {
  file: string;
  events: WireEvent[];
  answered: number;
}

const FILE = /^spill-\d{15}-\d+-\d+\.jsonl$/;

/**
 * Events that did not fit in memory, as append-only JSON lines files in one directory. A file is
 * written by one process, closed when it is full or when its replay starts, and deleted only
 * after the server has answered every event in it: a crash at any point leaves the file to be
 * replayed again at the next start, and the server's key ledger turns what was already stored
 * into `duplicate`, so nothing is lost or counted twice. One directory per process: two clients
 * on one directory would replay each other's files (harmless, but wasteful).
 */
export class SpillStore {
  /** Closed files not yet replayed, oldest first (names sort by creation time). */
  private readonly pending: string[];
  private current: { file: string; fd: number; lines: number } | undefined;
  private seq = 0;

  constructor(
    readonly dir: string,
    /** Lines per file: bounds the memory one replay takes. */
    private readonly maxEventsPerFile: number,
    private readonly logger: SpillLogger,
  ) {
    fs.mkdirSync(dir, { recursive: true });
    this.pending = fs.readdirSync(dir).filter((f) => FILE.test(f)).sort().map((f) => path.join(dir, f));
  }

  /** True while some spilled event has not been answered yet. */
  get hasPending(): boolean {
    return this.pending.length > 0 || this.current !== undefined;
  }

  /** Appends one event. A write(2) per event: once it returns, a crash of this process cannot lose it. */
  append(event: WireEvent): void {
    if (!this.current) {
      // Zero-padded milliseconds, pid and a counter: unique, and sorted oldest first.
      const file = path.join(this.dir, `spill-${String(Date.now()).padStart(15, '0')}-${process.pid}-${this.seq++}.jsonl`);
      this.current = { file, fd: fs.openSync(file, 'a'), lines: 0 };
    }
    fs.writeSync(this.current.fd, `${JSON.stringify(event)}\n`);
    if (++this.current.lines >= this.maxEventsPerFile) this.rotate();
  }

  /** The oldest spilled file with its events, closing the file being written if it is the only one. */
  startReplay(): SpillReplay | undefined {
    if (this.pending.length === 0) this.rotate();
    const file = this.pending[0];
    if (file === undefined) return undefined;
    return { file, events: this.read(file), answered: 0 };
  }

  /** Every event of the replayed file has its answer: only now may the file go. */
  finishReplay(replay: SpillReplay): void {
    fs.rmSync(replay.file, { force: true });
    if (this.pending[0] === replay.file) this.pending.shift();
  }

  /** Closes the file being written; what is on disk stays for the next start. */
  close(): void {
    this.rotate();
  }

  /** Keys of the events in the spill files not yet replayed (the replay in progress excluded). */
  keysOnDisk(exceptFile?: string): string[] {
    const files = this.current ? [...this.pending, this.current.file] : this.pending;
    return files.filter((f) => f !== exceptFile).flatMap((f) => this.read(f).map((e) => e.uniqueKey));
  }

  private rotate(): void {
    if (!this.current) return;
    fs.closeSync(this.current.fd);
    this.pending.push(this.current.file);
    this.current = undefined;
  }

  private read(file: string): WireEvent[] {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const events: WireEvent[] = [];
    let torn = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      try {
        events.push(JSON.parse(line) as WireEvent);
      } catch {
        torn++; // a line cut short by a crash during its write: addAmounts never returned for it
      }
    }
    if (torn > 0) this.logger.warn({ file, torn }, 'spill file has unreadable lines (a crash during a write); they are skipped');
    return events;
  }
}
