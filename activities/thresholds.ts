import { ApplicationFailure } from '@temporalio/common';
import type pg from 'pg';
import type { BillingDay } from '../core/billing-day.js';
import { thresholdWebhookWorkflowId, type ThresholdCrossing } from '../core/usage-thresholds.js';
import { SIGNATURE_HEADER, signWebhook } from './notifier.js';

const WEBHOOK_TIMEOUT_MS = 10_000;


export function createThresholdActivities(deps: { db: pg.Pool }) {
  return {
    /**
     * Records every threshold that the day's billing period has now crossed (once per threshold
     * and period: the row's key) and answers those whose webhook has not gone yet.
     */
    async recordThresholdCrossings(day: BillingDay): Promise<ThresholdCrossing[]> {
      const { rows } = await deps.db.query<{ threshold_id: string; period_start: string }>(
        `WITH period AS (SELECT date_trunc('month', $1::date)::date AS start)
         , crossed AS (
           INSERT INTO usage_threshold_crossings (threshold_id, period_start, period_total)
           SELECT t.id, p.start, s.total
           FROM usage_thresholds t
           CROSS JOIN period p
           JOIN organisations o ON o.id = t.org_id
           CROSS JOIN LATERAL (
             SELECT coalesce(sum(u.total), 0) AS total FROM usage_daily u
             WHERE u.internal_instance_id = o.internal_instance_id AND u.amount_type = t.amount_type
               AND u.billing_day >= p.start AND u.billing_day < p.start + interval '1 month'
           ) s
           WHERE t.deleted_at IS NULL AND s.total >= t.quantity
           ON CONFLICT (threshold_id, period_start) DO NOTHING
           RETURNING threshold_id, period_start)
         SELECT threshold_id, to_char(period_start, 'YYYY-MM-DD') AS period_start FROM crossed
         UNION
         SELECT c.threshold_id, to_char(c.period_start, 'YYYY-MM-DD') FROM usage_threshold_crossings c, period p
         WHERE c.period_start = p.start AND c.delivered_at IS NULL`,
        [day],
      );
      return rows.map((r) => ({ thresholdId: r.threshold_id, periodStart: r.period_start as BillingDay }));
    },

    /**
     * Posts the crossing to the organisation's webhook, signed with the threshold's secret, and
     * marks it delivered. A failure throws, and Temporal retries; a delivery already marked is not
     * sent again. The payload's id is stable, so a receiver dedupes the rare repeat (a crash
     * between the answer and the mark).
     */
    async deliverThresholdCrossing(crossing: ThresholdCrossing): Promise<'sent' | 'already-sent' | 'threshold-deleted'> {
      const { rows } = await deps.db.query<{
        org_id: string; amount_type: string; quantity: string; webhook_url: string; secret: string; deleted_at: Date | null;
        period_total: string; crossed_at: Date; delivered_at: Date | null;
      }>(
        `SELECT t.org_id, t.amount_type, t.quantity, t.webhook_url, t.secret, t.deleted_at, c.period_total, c.crossed_at, c.delivered_at
         FROM usage_threshold_crossings c JOIN usage_thresholds t ON t.id = c.threshold_id
         WHERE c.threshold_id = $1 AND c.period_start = $2`,
        [crossing.thresholdId, crossing.periodStart],
      );
      const row = rows[0];
      if (!row) throw ApplicationFailure.nonRetryable(`no crossing of ${crossing.thresholdId} in ${crossing.periodStart}`, 'CrossingNotFound');
      if (row.delivered_at) return 'already-sent';
      if (row.deleted_at) return 'threshold-deleted';
      const body = JSON.stringify({
        id: thresholdWebhookWorkflowId(crossing),
        type: 'usage.threshold_crossed',
        orgId: row.org_id,
        amountType: row.amount_type,
        threshold: row.quantity,
        periodStart: crossing.periodStart,
        periodTotal: row.period_total,
        crossedAt: row.crossed_at.toISOString(),
      });
      let failure: string | null = null;
      try {
        const res = await fetch(row.webhook_url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signWebhook(row.secret, body, Math.floor(Date.now() / 1000)) },
          body,
          signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
        });
        if (!res.ok) failure = `${row.webhook_url} answered ${res.status}`;
      } catch (err) {
        failure = `${row.webhook_url}: ${(err as Error).message}`;
      }
      await deps.db.query(
        `UPDATE usage_threshold_crossings SET attempts = attempts + 1, last_error = $3, delivered_at = CASE WHEN $3::text IS NULL THEN now() END
         WHERE threshold_id = $1 AND period_start = $2`,
        [crossing.thresholdId, crossing.periodStart, failure],
      );
      if (failure) throw ApplicationFailure.retryable(`threshold webhook not delivered: ${failure}`, 'WebhookFailed');
      return 'sent';
    },
  };
}
