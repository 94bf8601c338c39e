import { Type } from '@sinclair/typebox';
import { addDays, billingDayOf, checkDayRange, isBillingDay, type DayRangeCheck } from '../core/billing-day.js';
import { BillingDayParam } from './schemas.js';

/** `?from=&to=`: an inclusive range of billing days, both optional. */
export const DayRangeQuery = {
  from: Type.Optional({ ...BillingDayParam, description: 'First day (default: some days before `to`)' }),
  to: Type.Optional({ ...BillingDayParam, description: 'Last day, inclusive (default: today)' }),
};

export type DayRange = DayRangeCheck;

/** Longest range a read answers at once: a year of days keeps every answer small. */
export const MAX_RANGE_DAYS = 366;

/** The range a request asked for, with its defaults, or the error to answer with. */
export function resolveDayRange(query: { from?: string; to?: string }, defaultDays: number, now = Date.now()): DayRange {
  const to = query.to ?? billingDayOf(now);
  const from = query.from ?? (isBillingDay(to) ? addDays(to, -(defaultDays - 1)) : to);
  return checkDayRange(from, to, MAX_RANGE_DAYS);
}
