import { Context } from '@temporalio/activity';
import type pg from 'pg';
import type { BillingDay } from '../core/billing-day.js';
import { inTransaction } from '../db/pool.js';
import { usageUniqueKey } from './upload.js';
import type { ZuoraClient } from './zuora-client.js';

export type DifferenceKind = 'not_uploaded' | 'ledger_behind' | 'missing_in_zuora' | 'quantity_differs' | 'unknown_in_zuora';

export interface ReconciliationReport {
  runId: number;
  day: BillingDay;
  lines: number;
  differences: { uniqueKey: string; kind: DifferenceKind; usage: string | null; ledger: string | null; zuora: string | null }[];
}

/**
 * Compares, for every billable line of a day, what Postgres says was used, what the upload
 * ledger says was sent, and what Zuora holds, and records every difference.
 */
export function createReconcileActivities(deps: { db: pg.Pool; zuora: ZuoraClient; amountTypes: ReadonlyMap<string, string> }) {
  return {
    async reconcileDay(day: BillingDay): Promise<ReconciliationReport> {
      const { rows } = await deps.db.query<{
        org_id: string; zuora_account_number: string; amount_type: string; total: string | null; ledger_quantity: string | null; unique_key: string | null;
      }>(
        `WITH usage AS (
           SELECT o.id AS org_id, o.zuora_account_number, u.amount_type, u.total
           FROM usage_daily u JOIN organisations o ON o.internal_instance_id = u.internal_instance_id
           WHERE u.billing_day = $1 AND o.zuora_account_number IS NOT NULL
         ), ledger AS (
           SELECT org_id, zuora_account_number, amount_type, quantity, unique_key FROM upload_ledger WHERE billing_day = $1
         )
         SELECT coalesce(u.org_id, l.org_id) AS org_id, coalesce(u.zuora_account_number, l.zuora_account_number) AS zuora_account_number,
                coalesce(u.amount_type, l.amount_type) AS amount_type, u.total, l.quantity AS ledger_quantity, l.unique_key
         FROM usage u FULL JOIN ledger l ON l.org_id = u.org_id AND l.amount_type = u.amount_type`,
        [day],
      );
      const lines = rows
        .filter((r) => r.amount_type !== null && deps.amountTypes.has(r.amount_type))
        .map((r) => ({ ...r, key: r.unique_key ?? usageUniqueKey(r.org_id, day, r.amount_type) }));
      const zuoraDay = new Map<string, string>();
      const accounts = [...new Set(lines.map((l) => l.zuora_account_number))];
      for (const [i, account] of accounts.entries()) {
        Context.current().heartbeat({ account: i, of: accounts.length });
        for (const record of await deps.zuora.accountUsage(account)) {
          // Zuora answers "YYYY-MM-DD HH:mm:ss"; only this day's records are ours to compare.
          if (record.uniqueKey && record.startDateTime.startsWith(day)) zuoraDay.set(record.uniqueKey, String(record.quantity));
        }
      }
      const differences: ReconciliationReport['differences'] = [];
      for (const l of lines) {
        const zuora = zuoraDay.get(l.key) ?? null;
        zuoraDay.delete(l.key);
        const usage = l.total;
        const ledger = l.ledger_quantity;
        const kind: DifferenceKind | null =
          ledger === null ? 'not_uploaded'
          : ledger !== (usage ?? '0') ? 'ledger_behind'
          : zuora === null ? 'missing_in_zuora'
          : Number(zuora) !== Number(ledger) ? 'quantity_differs'
          : null;
        if (kind) differences.push({ uniqueKey: l.key, kind, usage, ledger, zuora });
      }
      for (const [key, quantity] of zuoraDay) {
        if (key.startsWith('tally-')) differences.push({ uniqueKey: key, kind: 'unknown_in_zuora', usage: null, ledger: null, zuora: quantity });
      }
      const runId = await record(day, lines.length, differences);
      return { runId, day, lines: lines.length, differences };
    },
  };

  async function record(day: BillingDay, lines: number, differences: ReconciliationReport['differences']): Promise<number> {
    return inTransaction(deps.db, async (client) => {
      const run = await client.query<{ id: string }>(
        'INSERT INTO reconciliation_runs (billing_day, lines, differences) VALUES ($1, $2, $3) RETURNING id',
        [day, lines, differences.length],
      );
      const runId = Number(run.rows[0]!.id);
      await client.query(
        `INSERT INTO reconciliation_differences (run_id, unique_key, kind, usage_quantity, ledger_quantity, zuora_quantity, org_id, zuora_account_number, amount_type)
         SELECT $1, d.k, d.kind, d.u, d.l, d.z, l.org_id, l.zuora_account_number, l.amount_type
         FROM unnest($2::text[], $3::text[], $4::numeric[], $5::numeric[], $6::numeric[]) AS d(k, kind, u, l, z)
         LEFT JOIN upload_ledger l ON l.unique_key = d.k`,
        [runId, differences.map((d) => d.uniqueKey), differences.map((d) => d.kind), differences.map((d) => d.usage),
          differences.map((d) => d.ledger), differences.map((d) => d.zuora)],
      );
      return runId;
    });
  }
}
