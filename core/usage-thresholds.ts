import type { BillingDay } from './billing-day.js';

/** A usage threshold crossed in one billing period. */
export interface ThresholdCrossing {
  thresholdId: string;
  /** The billing period's first day: periods are calendar months (UTC), as accounts bill on day 1. */
  periodStart: BillingDay;
}

/** The crossing's webhook workflow, and the id its payload carries: one per threshold and period. */
export function thresholdWebhookWorkflowId(c: ThresholdCrossing): string {
  return `threshold-${c.thresholdId}-${c.periodStart}`;
}
