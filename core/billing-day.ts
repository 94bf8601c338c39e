/** A UTC calendar day, `YYYY-MM-DD`: the unit of aggregation and upload. */
export type BillingDay = string & { readonly __brand: 'BillingDay' };

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

export function isBillingDay(value: string): value is BillingDay {
  const m = DAY.exec(value);
  if (!m) return false;
  const d = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === value;
}

export function parseBillingDay(value: string): BillingDay {
  if (!isBillingDay(value)) throw new RangeError(`not a calendar day (YYYY-MM-DD): ${JSON.stringify(value)}`);
  return value;
}

/** The UTC day an instant falls on. */
export function billingDayOf(instant: Date | number): BillingDay {
  return new Date(instant).toISOString().slice(0, 10) as BillingDay;
}

export function addDays(day: BillingDay, days: number): BillingDay {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return billingDayOf(d);
}

/** Start of the day and start of the next day, as ISO instants. */
export function dayBounds(day: BillingDay): { start: string; end: string } {
  return { start: `${day}T00:00:00.000Z`, end: `${addDays(day, 1)}T00:00:00.000Z` };
}

/**
 * A day closes DAY_CLOSE_DELAY_HOURS after the UTC midnight that ends it: until then late
 * events are ordinary usage; after, they restate the day.
 */
export function dayClosesAt(day: BillingDay, closeDelayHours: number): Date {
  return new Date(Date.parse(`${addDays(day, 1)}T00:00:00.000Z`) + closeDelayHours * 3_600_000);
}

/** The latest day whose close time has passed at `instant`. */
export function lastClosableDay(instant: Date | number, closeDelayHours: number): BillingDay {
  return addDays(billingDayOf(new Date(instant).getTime() - closeDelayHours * 3_600_000), -1);
}

/** Every day from `from` to `to`, both included. */
export function daysBetween(from: BillingDay, to: BillingDay): BillingDay[] {
  const days: BillingDay[] = [];
  for (let d = from; d <= to; d = addDays(d, 1)) days.push(d);
  return days;
}

export type DayRangeCheck =
  | { ok: true; from: BillingDay; to: BillingDay }
  | { ok: false; error: { code: 'INVALID_DAY' | 'INVALID_RANGE' | 'RANGE_TOO_LONG'; field: 'from' | 'to'; message: string } };

/** An inclusive range of calendar days, in order, at most `maxDays` long: what the API and the CLI accept. */
export function checkDayRange(from: string, to: string, maxDays: number): DayRangeCheck {
  if (!isBillingDay(to)) return { ok: false, error: { code: 'INVALID_DAY', field: 'to', message: `to is not a calendar day: ${to}` } };
  if (!isBillingDay(from)) return { ok: false, error: { code: 'INVALID_DAY', field: 'from', message: `from is not a calendar day: ${from}` } };
  if (from > to) return { ok: false, error: { code: 'INVALID_RANGE', field: 'from', message: `from (${from}) is after to (${to})` } };
  if (addDays(from, maxDays) <= to) return { ok: false, error: { code: 'RANGE_TOO_LONG', field: 'from', message: `ask for at most ${maxDays} days at once` } };
  return { ok: true, from, to };
}
