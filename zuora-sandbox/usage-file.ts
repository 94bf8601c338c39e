import { parse } from 'csv-parse/sync';
import type { Account, UsageWrite } from './model.js';
import { normalizeQuantity, usDateToZuora } from './usage-values.js';

/** Zuora's usage file columns, in the order of its template. */
export const USAGE_FILE_COLUMNS = [
  'ACCOUNT_ID',
  'UOM',
  'QTY',
  'STARTDATE',
  'ENDDATE',
  'SUBSCRIPTION_ID',
  'CHARGE_ID',
  'DESCRIPTION',
  'UNIQUE_KEY',
] as const;

type Column = (typeof USAGE_FILE_COLUMNS)[number];

/**
 * Zuora requires these headers even where the value may be empty (ENDDATE, SUBSCRIPTION_ID,
 * CHARGE_ID); DESCRIPTION and UNIQUE_KEY may be left out of the file altogether.
 */
const REQUIRED_HEADERS: readonly Column[] = ['ACCOUNT_ID', 'UOM', 'QTY', 'STARTDATE', 'ENDDATE', 'SUBSCRIPTION_ID', 'CHARGE_ID'];

/** Zuora's limits on the free-text columns. */
const UNIQUE_KEY_MAX = 50;
const DESCRIPTION_MAX = 200;

export type UsageFileReading =
  /** `lines[i]` is the line of the file `writes[i]` came from, for messages about it later. */
  | { ok: true; rowCount: number; writes: UsageWrite[]; lines: number[] }
  | { ok: false; rowCount: number; message: string };

/** A bad row: which data row (1 = first after the header), which line of the file, which column. */
class RowError extends Error {
  constructor(row: number, line: number, column: Column, problem: string) {
    super(`Row ${row} (line ${line}), ${column}: ${problem}`);
  }
}

interface ParsedLine {
  record: string[];
  info: { lines: number };
}

function readHeader(header: readonly string[]): Map<Column, number> | string {
  const positions = new Map<Column, number>();
  for (const [position, raw] of header.entries()) {
    const name = raw.trim().toUpperCase();
    if (!(USAGE_FILE_COLUMNS as readonly string[]).includes(name)) {
      return `Header (line 1): unknown column '${raw.trim()}'; the usage file's columns are ${USAGE_FILE_COLUMNS.join(', ')}`;
    }
    if (positions.has(name as Column)) return `Header (line 1): column ${name} appears twice`;
    positions.set(name as Column, position);
  }
  const missing = REQUIRED_HEADERS.filter((column) => !positions.has(column));
  if (missing.length > 0) return `Header (line 1): missing required column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
  return positions;
}

function readRow(
  values: readonly string[],
  columns: Map<Column, number>,
  row: number,
  line: number,
  findAccount: (accountNumber: string) => Account | undefined,
): UsageWrite {
  const cell = (column: Column): string => {
    const position = columns.get(column);
    return position === undefined ? '' : (values[position] ?? '').trim();
  };
  const fail = (column: Column, problem: string) => new RowError(row, line, column, problem);
  const optional = (column: Column): string | undefined => cell(column) || undefined;

  const accountNumber = cell('ACCOUNT_ID');
  if (!accountNumber) throw fail('ACCOUNT_ID', 'the account number is required');
  const account = findAccount(accountNumber);
  if (!account) throw fail('ACCOUNT_ID', `no account has the number '${accountNumber}' (use the account number, not the account id)`);

  const unitOfMeasure = cell('UOM');
  if (!unitOfMeasure) throw fail('UOM', 'the unit of measure is required');

  const quantity = normalizeQuantity(cell('QTY'));
  if (quantity === undefined) throw fail('QTY', `'${cell('QTY')}' is not a decimal number of 0 or more`);

  const startDateTime = usDateToZuora(cell('STARTDATE'));
  if (startDateTime === undefined) throw fail('STARTDATE', `'${cell('STARTDATE')}' is not a date in MM/DD/YYYY form`);

  const endText = cell('ENDDATE');
  const endDateTime = endText ? usDateToZuora(endText) : undefined;
  if (endText && endDateTime === undefined) throw fail('ENDDATE', `'${endText}' is not a date in MM/DD/YYYY form`);

  const description = optional('DESCRIPTION');
  if (description !== undefined && description.length > DESCRIPTION_MAX) {
    throw fail('DESCRIPTION', `longer than ${DESCRIPTION_MAX} characters`);
  }
  const uniqueKey = optional('UNIQUE_KEY');
  if (uniqueKey !== undefined && uniqueKey.length > UNIQUE_KEY_MAX) {
    throw fail('UNIQUE_KEY', `'${uniqueKey}' is longer than ${UNIQUE_KEY_MAX} characters`);
  }

  return {
    account,
    unitOfMeasure,
    quantity,
    startDateTime,
    endDateTime,
    subscriptionNumber: optional('SUBSCRIPTION_ID'),
    chargeNumber: optional('CHARGE_ID'),
    description,
    uniqueKey,
  };
}

/**
 * Reads a whole usage file, or says why it is rejected. Zuora's import is all-or-nothing, so the
 * first bad row rejects the file; its message names the row, the line and the column.
 */
export function readUsageFile(csv: string, findAccount: (accountNumber: string) => Account | undefined): UsageFileReading {
  let lines: ParsedLine[];
  try {
    lines = parse(csv, { bom: true, skip_empty_lines: true, info: true }) as unknown as ParsedLine[];
  } catch (error) {
    return { ok: false, rowCount: 0, message: `The usage file is not valid CSV: ${(error as Error).message}` };
  }
  const [header, ...rows] = lines;
  if (!header) return { ok: false, rowCount: 0, message: 'The usage file is empty: it needs a header line and at least one row' };
  const columns = readHeader(header.record);
  if (typeof columns === 'string') return { ok: false, rowCount: rows.length, message: columns };
  if (rows.length === 0) return { ok: false, rowCount: 0, message: 'The usage file has a header but no rows' };

  const writes: UsageWrite[] = [];
  for (const [index, line] of rows.entries()) {
    try {
      writes.push(readRow(line.record, columns, index + 1, line.info.lines, findAccount));
    } catch (error) {
      if (error instanceof RowError) return { ok: false, rowCount: rows.length, message: error.message };
      throw error;
    }
  }
  return { ok: true, rowCount: rows.length, writes, lines: rows.map((line) => line.info.lines) };
}
