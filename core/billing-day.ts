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
