import { Type } from '@sinclair/typebox';
import { addDays, billingDayOf, isBillingDay, type BillingDay } from '../core/billing-day.js';
import { BillingDayParam } from './schemas.js';

/** `?from=&to=`: an inclusive range of billing days, both optional. */
export const DayRangeQuery = {
  from: Type.Optional({ ...BillingDayParam, description: 'First day (default: some days before `to`)' }),
  to: Type.Optional({ ...BillingDayParam, description: 'Last day, inclusive (default: today)' }),
};

export type DayRange =
  | { ok: true; from: BillingDay; to: BillingDay }
  | { ok: false; error: { code: string; field: string; message: string } };

/** Longest range a read answers at once: a year of days keeps every answer small. */
export const MAX_RANGE_DAYS = 366;

/** The range a request asked for, with its defaults, or the error to answer with. */
export function resolveDayRange(query: { from?: string; to?: string }, defaultDays: number, now = Date.now()): DayRange {
  const to = query.to ?? billingDayOf(now);
  if (!isBillingDay(to)) return { ok: false, error: { code: 'INVALID_DAY', field: 'to', message: `to is not a calendar day: ${to}` } };
  const from = query.from ?? addDays(to, -(defaultDays - 1));
  if (!isBillingDay(from)) return { ok: false, error: { code: 'INVALID_DAY', field: 'from', message: `from is not a calendar day: ${from}` } };
  if (from > to) return { ok: false, error: { code: 'INVALID_RANGE', field: 'from', message: `from (${from}) is after to (${to})` } };
  if (addDays(from, MAX_RANGE_DAYS) <= to) {
    return { ok: false, error: { code: 'RANGE_TOO_LONG', field: 'from', message: `ask for at most ${MAX_RANGE_DAYS} days at once` } };
  }
  return { ok: true, from, to };
}
