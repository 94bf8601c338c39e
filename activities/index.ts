import type pg from 'pg';
import type { Config } from '../core/config.js';
import { createAggregateActivities } from './aggregate.js';
import { createIngestActivities } from './ingest.js';
import { createKeyLedgerActivities } from './key-ledger.js';
import type { RawEventStore } from './raw-events.js';
import { createTrialActivities, trialSettingsFromConfig, type TrialConfig, type TrialSettings } from './trial.js';
import { createReconcileActivities } from './reconcile.js';
import { createThresholdActivities } from './thresholds.js';
import { createUploadActivities } from './upload.js';
import type { ZuoraClient } from './zuora-client.js';

export interface ActivityDeps {
  db: pg.Pool;
  rawEvents: RawEventStore;
  zuora: ZuoraClient;
  amountTypes: ReadonlyMap<string, string>;
  importPollMs: number;
  importMaxBytes: number;
  backdatingWindowDays: number;
  /** OUTBOX_RETENTION_DAYS: how long a written batch keeps its events in the outbox. */
  outboxRetentionDays: number;
  /** DAY_CLOSE_DELAY_HOURS: when a day closes (core/billing-day.ts). */
  closeDelayHours: number;
  /** Trial length, reminders and where notices go (activities/trial.ts). */
  trials: TrialSettings;
}

/** All of Tally's activities, built from their dependencies: tests pass real ones made for the test. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createIngestActivities(deps),
    ...createAggregateActivities(deps),
    ...createUploadActivities(deps),
    ...createReconcileActivities(deps),
    ...createKeyLedgerActivities(deps),
    ...createTrialActivities(deps),
    ...createThresholdActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;

/** The activities' settings from the configuration, beside the clients they use. */
export function activityDeps(
  config: Pick<Config, 'amountTypes' | 'ZUORA_IMPORT_POLL_MS' | 'ZUORA_IMPORT_MAX_BYTES' | 'BACKDATING_WINDOW_DAYS' | 'DAY_CLOSE_DELAY_HOURS' | 'OUTBOX_RETENTION_DAYS'> & TrialConfig,
  clients: Pick<ActivityDeps, 'db' | 'rawEvents' | 'zuora'>,
): ActivityDeps {
  return {
    ...clients,
    amountTypes: config.amountTypes,
    importPollMs: config.ZUORA_IMPORT_POLL_MS,
    importMaxBytes: config.ZUORA_IMPORT_MAX_BYTES,
    backdatingWindowDays: config.BACKDATING_WINDOW_DAYS,
    closeDelayHours: config.DAY_CLOSE_DELAY_HOURS,
    outboxRetentionDays: config.OUTBOX_RETENTION_DAYS,
    trials: trialSettingsFromConfig(config),
  };
}
