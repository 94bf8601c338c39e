/**
 * Quantities and dates as Zuora's usage endpoints take them in and give them back. Quantities stay
 * decimal strings from end to end: 86400000000 container-seconds must come back digit for digit.
 */

const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

/**
 * A non-negative decimal in canonical form (`"007.50"` → `"7.5"`), or undefined when the text is
 * not one. Canonical form is what makes "same quantity" a string comparison.
 */
export function normalizeQuantity(text: string): string | undefined {
  const m = DECIMAL.exec(text.trim());
  if (!m) return undefined;
  const whole = (m[1] ?? '0').replace(/^0+(?=\d)/, '');
  const fraction = (m[2] ?? '').replace(/0+$/, '');
  return fraction ? `${whole}.${fraction}` : whole;
}

/**
 * A JSON quantity from the CRUD endpoint. Numbers are accepted only where JSON parsing cannot have
 * rounded them; anything bigger must come as a decimal string.
 */
export function quantityFromJson(value: unknown): string | undefined {
  if (typeof value === 'string') return normalizeQuantity(value);
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) return undefined;
  if (Number.isInteger(value) && !Number.isSafeInteger(value)) return undefined;
  const text = String(value);
  return /e/i.test(text) ? undefined : normalizeQuantity(text);
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** Zuora's display form of an instant: `YYYY-MM-DD HH:mm:ss`, in UTC (the sandbox tenant's zone). */
export function zuoraDateTime(instant: Date): string {
  return (
    `${instant.getUTCFullYear()}-${pad(instant.getUTCMonth() + 1)}-${pad(instant.getUTCDate())} ` +
    `${pad(instant.getUTCHours())}:${pad(instant.getUTCMinutes())}:${pad(instant.getUTCSeconds())}`
  );
}

const US_DATE = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/;

function isCalendarDate(year: number, month: number, day: number): boolean {
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

/**
 * The usage file's `MM/DD/YYYY` (the en_US locale Zuora defaults to) as the start of that day, or
 * undefined when it is not a real calendar date (`02/30/2024`).
 */
export function usDateToZuora(text: string): string | undefined {
  const m = US_DATE.exec(text.trim());
  if (!m) return undefined;
  const [month, day, year] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (!isCalendarDate(year, month, day)) return undefined;
  return zuoraDateTime(new Date(Date.UTC(year, month - 1, day)));
}

const ISO_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * The CRUD endpoint's `StartDateTime` (`2017-12-01T16:41:36.000+01:00`, or a bare date) as UTC
 * display form. A value without an offset is taken as UTC.
 */
export function isoToZuora(text: string): string | undefined {
  const m = ISO_DATE_TIME.exec(text.trim());
  if (!m) return undefined;
  const [, y = '', mo = '', d = '', h = '00', mi = '00', s = '00', zone = 'Z'] = m;
  // `new Date` silently rolls 2024-02-30 over to March, so check the calendar date first.
  if (!isCalendarDate(Number(y), Number(mo), Number(d))) return undefined;
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return undefined;
  const offset = zone === 'Z' ? zone : zone.replace(/^([+-]\d{2})(\d{2})$/, '$1:$2');
  const date = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}${offset}`);
  return Number.isNaN(date.getTime()) ? undefined : zuoraDateTime(date);
}
