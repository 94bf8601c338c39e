import type { Config } from '../core/config.js';
import { METADATA_ENTRIES_MAX, type EventRules } from '../core/usage-event.js';

/** The event contract's rules from the configuration: HTTP and forward ingest judge an event alike. */
export function eventRulesFromConfig(config: Config): EventRules {
  return {
    amountTypes: config.amountTypes,
    backdatingWindowDays: config.BACKDATING_WINDOW_DAYS,
    futureToleranceMs: 5 * 60_000,
    maxMetadataEntries: METADATA_ENTRIES_MAX,
  };
}
