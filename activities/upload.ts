import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { stringify } from 'csv-stringify/sync';
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { BillingDay } from '../core/billing-day.js';
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
  importId: string | null;
  records: number;
  /** Lines of customers with no organisation or no Zuora account: kept, not billed, reported. */
  unbillable: number;
}

export function createUploadActivities(deps: {
  db: pg.Pool;
  zuora: ZuoraClient;
  amountTypes: ReadonlyMap<string, string>;
  importPollMs: number;
}) {
  return {
    /**
     * Sends the day's lines that Zuora does not hold yet (or holds with another quantity) as one
     * usage import, and records each in the upload ledger before returning.
     */
    async submitUsageImport(day: BillingDay): Promise<SubmitResult> {
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
        (await deps.db.query<{ unique_key: string; quantity: string; status: string }>(
          'SELECT unique_key, quantity, status FROM upload_ledger WHERE unique_key = ANY($1)',
          [candidates.map((c) => c.uniqueKey)],
        )).rows.map((r) => [r.unique_key, r]),
      );
      const pending = candidates.filter((c) => {
        const sent = ledger.get(c.uniqueKey);
        return !sent || sent.status !== 'completed' || sent.quantity !== c.quantity;
      });
      const unbillable = rows.length - billable.length;
      if (pending.length === 0) return { importId: null, records: 0, unbillable };

      const zuoraDate = `${day.slice(5, 7)}/${day.slice(8, 10)}/${day.slice(0, 4)}`;
      const csv = stringify(
        pending.map((c) => [c.accountNumber, c.uom, c.quantity, zuoraDate, zuoraDate, '', '', `${c.amountType} on ${day}`, c.uniqueKey]),
        { header: true, columns: CSV_COLUMNS },
      );
      const { importId } = await callZuora(() => deps.zuora.importUsage(csv, `tally-usage-${day}.csv`));
      await deps.db.query(
        `INSERT INTO upload_ledger (unique_key, org_id, zuora_account_number, billing_day, amount_type, unit_of_measure, quantity, import_id, status)
         SELECT k, o, a, $1::date, t, u, q, $2, 'submitted'
         FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::numeric[]) AS p(k, o, a, t, u, q)
         ON CONFLICT (unique_key) DO UPDATE
           SET quantity = EXCLUDED.quantity, import_id = EXCLUDED.import_id, status = 'submitted',
               status_message = NULL, submitted_at = now(), completed_at = NULL`,
        [day, importId, pending.map((c) => c.uniqueKey), pending.map((c) => c.orgId), pending.map((c) => c.accountNumber),
          pending.map((c) => c.amountType), pending.map((c) => c.uom), pending.map((c) => c.quantity)],
      );
      return { importId, records: pending.length, unbillable };
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
      const res = await deps.db.query(
        `UPDATE upload_ledger SET status = $2, status_message = $3, completed_at = now() WHERE import_id = $1 AND status = 'submitted'`,
        [importId, outcome, message ?? null],
      );
      return res.rowCount ?? 0;
    },
  };
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
