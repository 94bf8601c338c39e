import type { FastifyBaseLogger } from 'fastify';
import type { UsageImport } from './model.js';
import { newZuoraId, type SandboxState } from './state.js';
import { readUsageFile } from './usage-file.js';

/**
 * Runs usage imports the way Zuora does: the upload is answered at once, and the file is worked
 * on later, Pending → Processing → Completed or Failed, one step every `stepMs`. Clients must poll
 * the status; a client that trusts the upload answer alone is wrong against the real Zuora too.
 */
export class UsageImporter {
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly state: SandboxState,
    private readonly stepMs: number,
    private readonly log: FastifyBaseLogger,
    /** The hangImports fault: while it answers true, an import that reached Processing stays there. */
    private readonly held: () => boolean = () => false,
  ) {}

  submit(fileName: string, csv: string, size: number, now = new Date()): UsageImport {
    const usageImport: UsageImport = {
      id: newZuoraId(),
      fileName,
      size,
      status: 'Pending',
      rowCount: 0,
      added: 0,
      updated: 0,
      ignored: 0,
      submittedAt: now.toISOString(),
      updatedAt: now.toISOString(),
      csv,
    };
    this.state.addImport(usageImport);
    this.scheduleStep(usageImport.id);
    return usageImport;
  }

  /** Picks up the imports a restart interrupted, from the step each had reached. */
  resumeUnfinished(): void {
    for (const usageImport of this.state.allImports()) {
      if (usageImport.status === 'Pending' || usageImport.status === 'Processing') this.scheduleStep(usageImport.id);
    }
  }

  stop(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private scheduleStep(importId: string): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.step(importId);
    }, this.stepMs);
    timer.unref();
    this.timers.add(timer);
  }

  private step(importId: string): void {
    const usageImport = this.state.findImport(importId);
    if (!usageImport) return; // the tenant was reset meanwhile
    try {
      if (usageImport.status === 'Pending') {
        this.process(usageImport);
        this.scheduleStep(importId);
      } else if (usageImport.status === 'Processing') {
        if (this.held()) this.scheduleStep(importId); // look again a step later
        else this.finish(usageImport);
      }
    } catch (error) {
      this.log.error({ err: error, importId }, 'usage import step failed');
      this.state.updateImport(importId, {
        status: 'Failed',
        message: `Internal error while importing: ${(error as Error).message}`,
        csv: undefined,
      });
    }
  }

  /**
   * Validates every row before writing any (the import is atomic), then writes the records as
   * `Importing`; they become `Pending` when the import completes.
   */
  private process(usageImport: UsageImport): void {
    const reading = readUsageFile(usageImport.csv ?? '', (number) => this.state.findAccountByNumber(number));
    if (!reading.ok) {
      this.state.updateImport(usageImport.id, { status: 'Processing', rowCount: reading.rowCount, failure: reading.message });
      return;
    }
    const conflict = this.state.findUniqueKeyConflict(reading.writes);
    if (conflict) {
      const failure = `Row ${conflict.index + 1} (line ${reading.lines[conflict.index]}), UNIQUE_KEY: ${conflict.message}`;
      this.state.updateImport(usageImport.id, { status: 'Processing', rowCount: reading.rowCount, failure });
      return;
    }
    this.state.batch(() => {
      const outcome = this.state.writeUsage(reading.writes, {
        sourceName: 'Import',
        status: 'Importing',
        importId: usageImport.id,
        fileName: usageImport.fileName,
      });
      this.state.updateImport(usageImport.id, {
        status: 'Processing',
        rowCount: reading.rowCount,
        recordIds: outcome.recordIds,
        added: outcome.added,
        updated: outcome.updated,
        ignored: outcome.ignored,
      });
    });
  }

  private finish(usageImport: UsageImport): void {
    if (usageImport.failure !== undefined) {
      this.state.updateImport(usageImport.id, { status: 'Failed', message: usageImport.failure, failure: undefined, csv: undefined });
      this.log.info({ importId: usageImport.id, reason: usageImport.failure }, 'usage import failed');
      return;
    }
    this.state.batch(() => {
      // A later import may have rewritten one of these records already; it owns its status now.
      const stillOurs = (usageImport.recordIds ?? []).filter((id) => this.state.findUsage(id)?.importId === usageImport.id);
      this.state.setUsageStatus(stillOurs, 'Pending');
      this.state.updateImport(usageImport.id, { status: 'Completed', csv: undefined, recordIds: undefined });
    });
    this.log.info({ importId: usageImport.id, added: usageImport.added, updated: usageImport.updated, ignored: usageImport.ignored }, 'usage import completed');
  }
}
