import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { stringify } from 'csv-stringify/sync';
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { addDays, billingDayOf, dayClosesAt, type BillingDay } from '../core/billing-day.js';
import { inTransaction } from '../db/pool.js';
import { ZuoraError, type ImportStatus, type ZuoraClient } from './zuora-client.js';

/** Zuora's usage import columns, in its documented order. */
const CSV_COLUMNS = ['ACCOUNT_ID', 'UOM', 'QTY', 'STARTDATE', 'ENDDATE', 'SUBSCRIPTION_ID', 'CHARGE_ID', 'DESCRIPTION', 'UNIQUE_KEY'];

/**
 * The same organisation, day and amount type always map to the same Zuora UniqueKey (≤ 50
 * characters), so a re-sent record updates or is ignored by Zuora instead of billing twice.
 */
export function usageUniqueKey(orgId: string, day: BillingDay, amountType: string): string {
  return `tally-${createHash('sha256').update(`${orgId}\u0000${day}\u0000${amountType}`).digest('hex').slice(0, 40)}`;
}

export interface SubmitResult {
  /** One import per file of at most importMaxBytes; empty when Zuora already holds every line. */
  importIds: string[];
  records: number;
  /** Of those, lines Zuora held with another quantity: corrections of an uploaded day. */
  corrections: number;
  /** Lines of customers with no organisation or no Zuora account: kept, not billed, reported. */
  unbillable: number;
}

interface PendingRecord {
  uniqueKey: string;
  orgId: string;
  accountNumber: string;
  amountType: string;
  uom: string;
  quantity: string;
  /** The quantity Zuora last completed for this key, if any. */
  previous: string | null;
}

export function createUploadActivities(deps: {
  db: pg.Pool;
  zuora: ZuoraClient;
  amountTypes: ReadonlyMap<string, string>;
  importPollMs: number;
  importMaxBytes: number;
  backdatingWindowDays: number;
  closeDelayHours: number;
}) {
  async function pendingRecords(day: BillingDay): Promise<{ pending: PendingRecord[]; unbillable: number }> {
    const { rows } = await deps.db.query<{
      internal_instance_id: string; amount_type: string; total: string; org_id: string | null; zuora_account_number: string | null;
    }>(
      `SELECT u.internal_instance_id, u.amount_type, u.total, o.id AS org_id, o.zuora_account_number
       FROM usage_daily u LEFT JOIN organisations o ON o.internal_instance_id = u.internal_instance_id
       WHERE u.billing_day = $1 ORDER BY o.id, u.amount_type`,
      [day],
    );
    const billable = rows.filter((r) => r.org_id !== null && r.zuora_account_number !== null && deps.amountTypes.has(r.amount_type));
    const candidates = billable.map((r) => ({
      uniqueKey: usageUniqueKey(r.org_id!, day, r.amount_type),
      orgId: r.org_id!,
      accountNumber: r.zuora_account_number!,
      amountType: r.amount_type,
      uom: deps.amountTypes.get(r.amount_type)!,
      quantity: r.total,
    }));
    const ledger = new Map(
      (await deps.db.query<{ unique_key: string; quantity: string; status: string; completed_quantity: string | null }>(
        `SELECT l.unique_key, l.quantity, l.status,
                (SELECT h.quantity FROM upload_history h
                 JOIN upload_ledger_imports i ON i.import_id = h.import_id AND i.status = 'completed'
                 WHERE h.unique_key = l.unique_key ORDER BY h.id DESC LIMIT 1) AS completed_quantity
         FROM upload_ledger l WHERE l.unique_key = ANY($1)`,
        [candidates.map((c) => c.uniqueKey)],
      )).rows.map((r) => [r.unique_key, r]),
    );
    const pending = candidates
      .filter((c) => {
        const sent = ledger.get(c.uniqueKey);
        return !sent || sent.status !== 'completed' || sent.quantity !== c.quantity;
      })
      .map((c) => {
        const sent = ledger.get(c.uniqueKey);
        return { ...c, previous: sent?.completed_quantity ?? null };
      });
    return { pending, unbillable: rows.length - billable.length };
  }

  /** Cuts the records into CSV files of at most importMaxBytes each, header included. */
  function csvFiles(day: BillingDay, records: PendingRecord[]): { csv: string; records: PendingRecord[] }[] {
    const zuoraDate = `${day.slice(5, 7)}/${day.slice(8, 10)}/${day.slice(0, 4)}`;
    const header = stringify([], { header: true, columns: CSV_COLUMNS });
    const files: { csv: string; records: PendingRecord[] }[] = [];
    let lines: string[] = [];
    let chunk: PendingRecord[] = [];
    let bytes = Buffer.byteLength(header);
    for (const r of records) {
      const line = stringify([[r.accountNumber, r.uom, r.quantity, zuoraDate, zuoraDate, '', '', `${r.amountType} on ${day}`, r.uniqueKey]]);
      const size = Buffer.byteLength(line);
      if (chunk.length > 0 && bytes + size > deps.importMaxBytes) {
        files.push({ csv: header + lines.join(''), records: chunk });
        lines = [];
        chunk = [];
        bytes = Buffer.byteLength(header);
      }
      lines.push(line);
      chunk.push(r);
      bytes += size;
    }
    if (chunk.length > 0) files.push({ csv: header + lines.join(''), records: chunk });
    return files;
  }

  return {
    /** Only a closed day uploads: until its close time (and the aggregation that settles it) late events are still ordinary usage. */
    async assertDayClosed(day: BillingDay): Promise<void> {
      const closed = await deps.db.query('SELECT 1 FROM closed_days WHERE billing_day = $1', [day]);
      if ((closed.rowCount ?? 0) > 0) return;
      const closesAt = dayClosesAt(day, deps.closeDelayHours);
      throw ApplicationFailure.nonRetryable(
        closesAt.getTime() > Date.now()
          ? `${day} is open until ${closesAt.toISOString()} (DAY_CLOSE_DELAY_HOURS=${deps.closeDelayHours}); only closed days upload`
          : `${day} is past its close time but not settled yet: aggregate it (aggregate-${day}) first`,
        'DayOpen',
      );
    },

    /**
     * Closed days, within the backdating window, with a billable line Zuora does not hold at its
     * current quantity: never uploaded, a failed import, or restated since.
     */
    async daysAwaitingUpload(asOf: string): Promise<BillingDay[]> {
      const oldest = addDays(billingDayOf(new Date(asOf)), -deps.backdatingWindowDays - 2);
      const { rows } = await deps.db.query<{ day: string }>(
        `SELECT DISTINCT to_char(u.billing_day, 'YYYY-MM-DD') AS day
         FROM usage_daily u
         JOIN closed_days c ON c.billing_day = u.billing_day
         JOIN organisations o ON o.internal_instance_id = u.internal_instance_id AND o.zuora_account_number IS NOT NULL
         LEFT JOIN upload_ledger l ON l.org_id = o.id AND l.billing_day = u.billing_day AND l.amount_type = u.amount_type
         WHERE u.billing_day >= $1 AND u.amount_type = ANY($2)
           AND (l.unique_key IS NULL OR l.status <> 'completed' OR l.quantity <> u.total)
         ORDER BY 1`,
        [oldest, [...deps.amountTypes.keys()]],
      );
      return rows.map((r) => r.day as BillingDay);
    },

    /**
     * Sends the day's lines that Zuora does not hold yet (or holds with another quantity: a
     * correction) as usage imports of at most importMaxBytes, and records each line in the upload
     * ledger and its history once Zuora took the file. A crash in between is safe: the re-run
     * sends the same UniqueKeys, which Zuora ignores when identical.
     */
    async submitUsageImport(day: BillingDay): Promise<SubmitResult> {
      const { pending, unbillable } = await pendingRecords(day);
      const importIds: string[] = [];
      const files = csvFiles(day, pending);
      for (const [n, file] of files.entries()) {
        Context.current().heartbeat({ file: n, of: files.length });
        const { importId } = await callZuora(() => deps.zuora.importUsage(file.csv, `tally-usage-${day}-${n + 1}.csv`));
        importIds.push(importId);
        await recordSubmission(day, importId, file.records);
      }
      return { importIds, records: pending.length, corrections: pending.filter((p) => p.previous !== null).length, unbillable };
    },

    /** Polls an import until Zuora finishes it, heartbeating so a dead worker is noticed. */
    async awaitUsageImport(importId: string): Promise<{ status: ImportStatus; message?: string }> {
      const ctx = Context.current();
      for (;;) {
        const result = await callZuora(() => deps.zuora.importStatus(importId));
        ctx.heartbeat(result.status);
        if (result.status === 'Completed' || result.status === 'Failed' || result.status === 'Canceled') return result;
        await ctx.sleep(deps.importPollMs);
      }
    },

    async recordUsageImport(importId: string, status: ImportStatus, message?: string): Promise<number> {
      const outcome = status === 'Completed' ? 'completed' : 'failed';
      return inTransaction(deps.db, async (client) => {
        await client.query('UPDATE upload_ledger_imports SET status = $2, status_message = $3, finished_at = now() WHERE import_id = $1', [importId, outcome, message ?? null]);
        const res = await client.query(
          `UPDATE upload_ledger SET status = $2, status_message = $3, completed_at = now() WHERE import_id = $1 AND status = 'submitted'`,
          [importId, outcome, message ?? null],
        );
        return res.rowCount ?? 0;
      });
    },
  };

  async function recordSubmission(day: BillingDay, importId: string, records: PendingRecord[]): Promise<void> {
    await inTransaction(deps.db, async (client) => {
      await client.query('INSERT INTO upload_ledger_imports (import_id, billing_day, records) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [importId, day, records.length]);
      await client.query(
        `INSERT INTO upload_ledger (unique_key, org_id, zuora_account_number, billing_day, amount_type, unit_of_measure, quantity, import_id, status)
         SELECT k, o, a, $1::date, t, u, q, $2, 'submitted'
         FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::numeric[]) AS p(k, o, a, t, u, q)
         ON CONFLICT (unique_key) DO UPDATE
           SET quantity = EXCLUDED.quantity, import_id = EXCLUDED.import_id, status = 'submitted',
               status_message = NULL, submitted_at = now(), completed_at = NULL`,
        [day, importId, records.map((c) => c.uniqueKey), records.map((c) => c.orgId), records.map((c) => c.accountNumber),
          records.map((c) => c.amountType), records.map((c) => c.uom), records.map((c) => c.quantity)],
      );
      await client.query(
        `INSERT INTO upload_history (unique_key, kind, quantity, previous_quantity, import_id)
         SELECT k, CASE WHEN p IS NULL THEN (CASE WHEN EXISTS (SELECT 1 FROM upload_history h WHERE h.unique_key = k) THEN 'resend' ELSE 'initial' END)
                        ELSE 'correction' END, q, p, $1
         FROM unnest($2::text[], $3::numeric[], $4::numeric[]) AS r(k, q, p)`,
        [importId, records.map((r) => r.uniqueKey), records.map((r) => r.quantity), records.map((r) => r.previous)],
      );
    });
  }
}

/** Zuora's own verdict decides retries; its Retry-After becomes Temporal's next retry delay. */
async function callZuora<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (!(err instanceof ZuoraError)) throw err; // network errors: Temporal retries them
    throw ApplicationFailure.create({
      type: 'ZuoraError',
      message: err.message,
      nonRetryable: !err.retryable,
      nextRetryDelay: err.retryAfterSeconds !== undefined ? err.retryAfterSeconds * 1000 : undefined,
      details: [{ status: err.status, reasons: err.reasons }],
    });
  }
}
