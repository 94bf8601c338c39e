import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';
import type { BillingDay } from '../core/billing-day.js';

/** Registered on the Temporal server (devstack/temporal.ts) so operators can search by them. */
export const BillingDayKey = defineSearchAttributeKey('BillingDay', SearchAttributeType.KEYWORD);
export const OrgIdKey = defineSearchAttributeKey('OrgId', SearchAttributeType.KEYWORD);

/** Set by Temporal on every run a Schedule starts: the time the run was scheduled for. */
export const ScheduledStartTimeKey = defineSearchAttributeKey('TemporalScheduledStartTime', SearchAttributeType.DATETIME);

export function billingDaySearchAttribute(day: BillingDay): SearchAttributePair {
  return { key: BillingDayKey, value: day };
}
