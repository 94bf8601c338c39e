import { proxyActivities } from '@temporalio/workflow';
import type * as activities from '../activities/index.js';
import type { AggregateOptions } from '../activities/aggregate.js';
import type { BillingDay } from '../core/billing-day.js';

const { aggregateDay } = proxyActivities<activities.Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes' },
});

/**
 * aggregate-<day>: makes the day's usage lines in Postgres equal to the deduplicated raw events,
 * for every customer of the day (an operator, a backfill) or for the dirty ones (the schedule).
 * One workflow id per day, so two recomputes of a day never race.
 */
export async function aggregateDayWorkflow(
  day: BillingDay,
  options: AggregateOptions = { scope: 'full', reason: 'recompute' },
): Promise<Awaited<ReturnType<activities.Activities['aggregateDay']>>> {
  return aggregateDay(day, options);
}
