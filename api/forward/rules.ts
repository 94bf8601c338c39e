import type { Config } from '../../core/config.js';
import type { EventRules } from '../../core/usage-event.js';

/**
 * The event contract's rules from the configuration, the same values the HTTP ingest route uses
 * (api/routes/events.ts builds them inline), so an event judged over either protocol gets the same
 * answer. One of the two copies should go once both live side by side.
 */
export function eventRulesFromConfig(config: Config): EventRules {
  return {
    amountTypes: config.amountTypes,
    backdatingWindowDays: config.BACKDATING_WINDOW_DAYS,
    futureToleranceMs: 5 * 60_000,
    maxMetadataEntries: 64,
  };
}
