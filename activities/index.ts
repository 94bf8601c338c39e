import type pg from 'pg';
import { createAggregateActivities } from './aggregate.js';
import { createIngestActivities } from './ingest.js';
import { createKeyLedgerActivities } from './key-ledger.js';
import type { RawEventStore } from './raw-events.js';
import { createUploadActivities } from './upload.js';
import type { ZuoraClient } from './zuora-client.js';

export interface ActivityDeps {
  db: pg.Pool;
  rawEvents: RawEventStore;
  zuora: ZuoraClient;
  amountTypes: ReadonlyMap<string, string>;
  importPollMs: number;
  backdatingWindowDays: number;
}

/** All of Tally's activities, built from their dependencies: tests pass real ones made for the test. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createIngestActivities(deps),
    ...createAggregateActivities(deps),
    ...createUploadActivities(deps),
    ...createKeyLedgerActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
