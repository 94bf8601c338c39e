import type { BigQuery, TableMetadata } from '@google-cloud/bigquery';
import type { AcceptedEvent } from '../core/usage-event.js';
import type { BillingDay } from '../core/billing-day.js';

/** One row per event and amount type, the shape the original Fluentd ingester wrote. */
const schema: TableMetadata['schema'] = {
  fields: [
    { name: 'insert_id', type: 'STRING', mode: 'REQUIRED', description: '<event key>:<amount type>, also the insertId' },
    { name: 'event_key', type: 'STRING', mode: 'REQUIRED' },
    { name: 'internal_instance_id', type: 'STRING', mode: 'REQUIRED' },
    { name: 'amount_type', type: 'STRING', mode: 'REQUIRED' },
    { name: 'amount_value', type: 'INT64', mode: 'REQUIRED' },
    { name: 'occurred_at', type: 'TIMESTAMP', mode: 'REQUIRED' },
    { name: 'event_date', type: 'DATE', mode: 'REQUIRED' },
    { name: 'metadata', type: 'STRING', description: 'JSON object of string values' },
    { name: 'batch_id', type: 'STRING', mode: 'REQUIRED' },
    { name: 'received_at', type: 'TIMESTAMP', mode: 'REQUIRED' },
  ],
};

export interface DailyUsageLine {
  internalInstanceId: string;
  amountType: string;
  /** Decimal string: INT64 sums pass through no floating point. */
  total: string;
  eventCount: number;
  keyChecksum: string;
}

/**
 * A row's contribution to its line's key checksum: the first 60 bits of MD5(insert id), as a
 * non-negative INT64. MD5 runs natively in BigQuery and in the emulator (FARM_FINGERPRINT is a
 * Python function there, ten times the whole query), and anyone can recompute it from the raw rows.
 */
export const KEY_FINGERPRINT = "CAST(CONCAT('0x', SUBSTR(TO_HEX(MD5(insert_id)), 1, 15)) AS INT64)";

/** BigQuery takes up to 50,000 rows and 10 MB in one streaming insert; these stay well inside. */
const INSERT_MAX_ROWS = 10_000;
const INSERT_MAX_BYTES = 8 * 1024 * 1024;

/**
 * The error for an `insertAll` answer that lists refused rows, naming the first; null when every
 * row was taken. BigQuery answers 200 with `insertErrors` for a partial failure, so a caller that
 * looked at the status alone would mark rows written that are not.
 */
export function insertRefusal(response: unknown, rows: readonly { insertId: string }[]): Error | null {
  const refused = (response as { insertErrors?: { index: number; errors?: { reason?: string; message?: string }[] }[] } | undefined)?.insertErrors ?? [];
  if (refused.length === 0) return null;
  const first = refused[0]!;
  const why = (first.errors ?? []).map((e) => `${e.reason ?? 'error'}: ${e.message ?? ''}`).join('; ') || 'no reason given';
  return new Error(`BigQuery refused ${refused.length} of ${rows.length} rows; row ${rows[first.index]?.insertId ?? `#${first.index}`}: ${why}`);
}

/** The raw event table in BigQuery: partitioned by event date, clustered by customer. */
export class RawEventStore {
  constructor(
    private readonly bigquery: BigQuery,
    private readonly datasetId: string,
    private readonly tableId: string,
  ) {}

  get tableRef(): string {
    return `\`${this.bigquery.projectId}.${this.datasetId}.${this.tableId}\``;
  }

  /** Creates the dataset and table if missing; safe to call at every start. */
  async ensureTable(): Promise<void> {
    const [dataset] = await this.bigquery.dataset(this.datasetId).get({ autoCreate: true });
    const table = dataset.table(this.tableId);
    const [exists] = await table.exists();
    if (exists) return;
    try {
      await dataset.createTable(this.tableId, {
        schema,
        timePartitioning: { type: 'DAY', field: 'event_date' },
        clustering: { fields: ['internal_instance_id'] },
      });
    } catch (err) {
      // Two processes starting together both see "missing"; the loser's 409 is fine.
      if ((err as { code?: number }).code !== 409) throw err;
    }
  }

  /**
   * Streams the rows with insertId = `<key>:<amount type>`. BigQuery's insertId dedupe is best
   * effort, so a retried insert may leave a second copy: the aggregation dedupes at query time.
   */
  async insert(events: readonly AcceptedEvent[], batchId: string, receivedAt: string): Promise<number> {
    return this.insertBatches([{ events, batchId, receivedAt }]);
  }

  /**
   * Streams several outbox batches in as few requests as BigQuery takes: up to
   * INSERT_MAX_ROWS rows and about INSERT_MAX_BYTES each: every write to the table costs a
   * request, so a drain pass sends its batches together rather than 500 rows at a time.
   */
  async insertBatches(batches: readonly { events: readonly AcceptedEvent[]; batchId: string; receivedAt: string }[]): Promise<number> {
    const table = this.bigquery.dataset(this.datasetId).table(this.tableId);
    let chunk: { insertId: string; json: Record<string, string> }[] = [];
    let chunkBytes = 0;
    let written = 0;
    const send = async () => {
      if (chunk.length === 0) return;
      // The client's own insert path; `table.insert` would first deep-copy every row (its
      // `extend(true, …)`), the largest share of the drainer's CPU (docs/benchmarks.md). The body
      // goes serialized: given as `json`, the request layers below walk every row three more
      // times (two deep copies and the `{{projectId}}` substitution): 15-16 ms of the worker's
      // CPU per 500-event batch drained that way, 6 ms this way (docs/benchmarks.md).
      const [response] = await table.request({
        method: 'POST', uri: '/insertAll', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ rows: chunk }),
      });
      const refused = insertRefusal(response, chunk);
      if (refused) throw refused;
      written += chunk.length;
      chunk = [];
      chunkBytes = 0;
    };
    for (const { events, batchId, receivedAt } of batches) {
      for (const e of events) {
        const metadata = JSON.stringify(e.metadata);
        for (const [amountType, value] of Object.entries(e.amounts)) {
          const insertId = `${e.key}:${amountType}`;
          // The row's JSON is about its strings plus the field names and quotes.
          const bytes = 3 * insertId.length + e.instanceId.length + 2 * metadata.length + batchId.length + 240;
          if (chunk.length >= INSERT_MAX_ROWS || chunkBytes + bytes > INSERT_MAX_BYTES) await send();
          chunk.push({
            insertId,
            json: {
              insert_id: insertId,
              event_key: e.key,
              internal_instance_id: e.instanceId,
              amount_type: amountType,
              amount_value: String(value),
              occurred_at: e.occurredAt,
              event_date: e.day,
              metadata,
              batch_id: batchId,
              received_at: receivedAt,
            },
          });
          chunkBytes += bytes;
        }
      }
    }
    await send();
    return written;
  }

  /**
   * The day's totals per customer and amount type, each insert id counted once, with the count
   * of rows and an order-independent checksum of their insert ids (XOR of KEY_FINGERPRINT). Given customers, only theirs:
   * the table is clustered by customer, so a dirty-days run scans only their blocks of the partition.
   */
  async dailyUsage(day: BillingDay, instanceIds?: readonly string[]): Promise<DailyUsageLine[]> {
    const onlySome = instanceIds !== undefined;
    const [rows] = await this.bigquery.query({
      query: `
        SELECT internal_instance_id, amount_type,
               CAST(SUM(amount_value) AS STRING) AS total,
               COUNT(*) AS event_count,
               CAST(BIT_XOR(${KEY_FINGERPRINT}) AS STRING) AS key_checksum
        FROM (
          SELECT internal_instance_id, amount_type, amount_value, insert_id,
                 ROW_NUMBER() OVER (PARTITION BY insert_id ORDER BY received_at) AS copy
          FROM ${this.tableRef}
          WHERE event_date = @day${onlySome ? ' AND internal_instance_id IN UNNEST(@instances)' : ''}
        )
        WHERE copy = 1
        GROUP BY internal_instance_id, amount_type
        ORDER BY internal_instance_id, amount_type`,
      params: { day: this.bigquery.date(day), ...(onlySome ? { instances: [...instanceIds] } : {}) },
      ...(onlySome ? { types: { instances: ['STRING'] } } : {}),
    });
    return (rows as Record<string, unknown>[]).map((r) => ({
      internalInstanceId: String(r.internal_instance_id),
      amountType: String(r.amount_type),
      total: String(r.total),
      eventCount: Number(r.event_count),
      keyChecksum: String(r.key_checksum),
    }));
  }

  /** How many rows (copies included) an event key has: what a producer's "did it arrive once?" asks. */
  async countRowsOfEvent(eventKey: string): Promise<number> {
    const [rows] = await this.bigquery.query({
      query: `SELECT COUNT(*) AS n FROM ${this.tableRef} WHERE event_key = @key`,
      params: { key: eventKey },
    });
    return Number((rows as { n: number }[])[0]?.n ?? 0);
  }

  /** Rows stored for a day, copies included: what tests and operators compare against. */
  async countRows(day: BillingDay): Promise<{ rows: number; distinctInsertIds: number }> {
    const [rows] = await this.bigquery.query({
      query: `SELECT COUNT(*) AS n, COUNT(DISTINCT insert_id) AS d FROM ${this.tableRef} WHERE event_date = @day`,
      params: { day: this.bigquery.date(day) },
    });
    const r = (rows as { n: number; d: number }[])[0];
    return { rows: Number(r?.n ?? 0), distinctInsertIds: Number(r?.d ?? 0) };
  }

  /**
   * The raw events behind one daily line (the billing API's lineage), each insert id once: the
   * copy dailyUsage counts, the first received. An insert id is `<key>:<amount type>` and a key
   * belongs to one customer, so filtering before the dedupe picks the same copies as dailyUsage.
   * Paged by insert id: the rows after `after`, at most `limit`.
   */
  async lineEvents(
    line: { day: BillingDay; internalInstanceId: string; amountType: string },
    page: { after: string | null; limit: number },
  ): Promise<{ insertId: string; eventKey: string; amountValue: string; occurredAt: string; receivedAt: string; batchId: string; metadata: Record<string, string> }[]> {
    if (!Number.isInteger(page.limit) || page.limit < 1) throw new RangeError(`limit must be a positive integer, not ${page.limit}`);
    const [rows] = await this.bigquery.query({
      query: `
        SELECT insert_id, event_key, CAST(amount_value AS STRING) AS amount_value,
               UNIX_MILLIS(occurred_at) AS occurred_ms, UNIX_MILLIS(received_at) AS received_ms,
               batch_id, metadata
        FROM (
          SELECT *, ROW_NUMBER() OVER (PARTITION BY insert_id ORDER BY received_at) AS copy
          FROM ${this.tableRef}
          WHERE event_date = @day AND internal_instance_id = @instance AND amount_type = @amountType
        )
        WHERE copy = 1 AND insert_id > @after
        ORDER BY insert_id
        LIMIT ${page.limit}`,
      params: { day: this.bigquery.date(line.day), instance: line.internalInstanceId, amountType: line.amountType, after: page.after ?? '' },
    });
    return (rows as Record<string, unknown>[]).map((r) => ({
      insertId: String(r.insert_id),
      eventKey: String(r.event_key),
      amountValue: String(r.amount_value),
      occurredAt: new Date(Number(r.occurred_ms)).toISOString(),
      receivedAt: new Date(Number(r.received_ms)).toISOString(),
      batchId: String(r.batch_id),
      metadata: r.metadata ? (JSON.parse(String(r.metadata)) as Record<string, string>) : {},
    }));
  }
}
