// One synthetic day of raw events for the aggregation benchmark, generated inside BigQuery by DML
// (no upload of millions of rows), and the usage lines it must aggregate to, computed here.
import type { BigQuery } from '@google-cloud/bigquery';
import type { BillingDay } from '../core/billing-day.js';

export interface RawEventDay {
  day: BillingDay;
  /** Rows in the table, duplicate copies included. */
  rows: number;
  customers: number;
  amountTypes: readonly string[];
  /** Second copies of an insert id received a minute after the first, as a retried streaming insert leaves them. */
  duplicates: number;
  /** Distinct insert ids: two amount types per event, so about rows / 2 events. */
  distinct: number;
}

export interface ExpectedLine { total: number; eventCount: number }

export function rawEventDay(day: BillingDay, rows: number, customers: number, amountTypes: readonly string[]): RawEventDay {
  const duplicates = Math.floor(rows / 100);
  return { day, rows, customers, amountTypes, duplicates, distinct: rows - duplicates };
}

/*
 * Row x of the table (0 ≤ x < rows) is distinct row r = x below `distinct`, else a copy of distinct
 * row (x - distinct) × stride. Distinct row r is event e = r div 2, for customer e mod customers, of
 * amount type (e div customers + r mod 2) mod 4 (two per event, all four per customer), with an
 * amount from 1 to 3600; the events spread over the day. The same formulas are in the SQL and in
 * expectedLines: keep them together. ORDINAL, not OFFSET: bqemulator 1.4.0 reads
 * `array[OFFSET(column)]` one-based (NULL for 0) and lets the NULL into a REQUIRED column;
 * `array[ORDINAL(column + 1)]` is right in both.
 */
const stride = (d: RawEventDay) => Math.max(1, Math.floor(d.distinct / Math.max(1, d.duplicates)));
const events = (d: RawEventDay) => Math.ceil(d.distinct / 2);
const amountOf = (event: number, typeIndex: number) => 1 + ((event * 7919 + typeIndex * 104729) % 3600);

function insertSql(tableRef: string): string {
  return `
    INSERT INTO ${tableRef} (insert_id, event_key, internal_instance_id, amount_type, amount_value, occurred_at, event_date, metadata, batch_id, received_at)
    SELECT CONCAT(event_key, ':', amount_type), event_key, CONCAT('bench-inst-', CAST(MOD(e, @customers) AS STRING)), amount_type,
           1 + MOD(e * 7919 + t * 104729, 3600), occurred_at, @day, @metadata, CONCAT('bench-batch-', CAST(DIV(e, 500) AS STRING)),
           TIMESTAMP_ADD(occurred_at, INTERVAL IF(copy, 62, 2) SECOND)
    FROM (
      SELECT e, t, copy, CONCAT(@keyPrefix, CAST(e AS STRING)) AS event_key, @amountTypes[ORDINAL(t + 1)] AS amount_type,
             TIMESTAMP_ADD(TIMESTAMP(@day), INTERVAL DIV(e * 86400, @events) SECOND) AS occurred_at
      FROM (
        SELECT DIV(src, 2) AS e, MOD(DIV(DIV(src, 2), @customers) + MOD(src, 2), @typeCount) AS t, copy
        FROM (
          SELECT IF(x < @distinct, x, (x - @distinct) * @stride) AS src, x >= @distinct AS copy
          FROM UNNEST(GENERATE_ARRAY(@from, @to)) AS x
        )
      )
    )`;
}

/** Inserts the day's rows with one DML query job per chunk of rows; `onChunk` gets the rows done so far. */
export async function insertRawEventDay(bigquery: BigQuery, tableRef: string, d: RawEventDay, chunkRows: number, onChunk: (rowsDone: number) => void): Promise<void> {
  for (let from = 0; from < d.rows; from += chunkRows) {
    const to = Math.min(d.rows, from + chunkRows) - 1;
    await bigquery.query({
      query: insertSql(tableRef),
      params: {
        day: bigquery.date(d.day), customers: d.customers, amountTypes: [...d.amountTypes], typeCount: d.amountTypes.length,
        metadata: JSON.stringify({ service: 'bench', region: 'eu-west-1' }), keyPrefix: `bench-${d.day}-`,
        events: events(d), distinct: d.distinct, stride: stride(d), from, to,
      },
    });
    onChunk(to + 1);
  }
}

/** The lines the day must aggregate to: each distinct insert id once, keyed `<customer>\0<amount type>`. */
export function expectedLines(d: RawEventDay): Map<string, ExpectedLine> {
  const types = d.amountTypes.length;
  const totals = new Float64Array(d.customers * types);
  const counts = new Float64Array(d.customers * types);
  for (let r = 0; r < d.distinct; r++) {
    const e = Math.floor(r / 2);
    const t = (Math.floor(e / d.customers) + (r % 2)) % types;
    const line = (e % d.customers) * types + t;
    totals[line]! += amountOf(e, t);
    counts[line]! += 1;
  }
  const lines = new Map<string, ExpectedLine>();
  for (let c = 0; c < d.customers; c++) {
    for (let t = 0; t < types; t++) {
      const eventCount = counts[c * types + t]!;
      if (eventCount > 0) lines.set(`bench-inst-${c}\u0000${d.amountTypes[t]}`, { total: totals[c * types + t]!, eventCount });
    }
  }
  return lines;
}
