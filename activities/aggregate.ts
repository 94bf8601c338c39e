import type pg from 'pg';
import type { BillingDay } from '../core/billing-day.js';
import type { RawEventStore } from './raw-events.js';

export interface AggregateResult {
  lines: number;
  /** Lines inserted or whose total, count or checksum changed. */
  changed: number;
  /** Lines that no longer have any event (removed raw rows). */
  removed: number;
}

export function createAggregateActivities(deps: { db: pg.Pool; rawEvents: RawEventStore }) {
  return {
    /** Recomputes a day's usage lines from the raw events and makes usage_daily equal to them. Idempotent. */
    async aggregateDay(day: BillingDay): Promise<AggregateResult> {
      const lines = await deps.rawEvents.dailyUsage(day);
      const client = await deps.db.connect();
      try {
        await client.query('BEGIN');
        const instances = lines.map((l) => l.internalInstanceId);
        const types = lines.map((l) => l.amountType);
        const removed = await client.query(
          `DELETE FROM usage_daily
           WHERE billing_day = $1
             AND (internal_instance_id, amount_type) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
          [day, instances, types],
        );
        const changed = await client.query(
          `INSERT INTO usage_daily (internal_instance_id, billing_day, amount_type, total, event_count, key_checksum)
           SELECT i, $1::date, t, total, n, c
           FROM unnest($2::text[], $3::text[], $4::numeric[], $5::bigint[], $6::text[]) AS l(i, t, total, n, c)
           ON CONFLICT (internal_instance_id, billing_day, amount_type) DO UPDATE
             SET total = EXCLUDED.total, event_count = EXCLUDED.event_count,
                 key_checksum = EXCLUDED.key_checksum, computed_at = now()
             WHERE (usage_daily.total, usage_daily.event_count, usage_daily.key_checksum)
                   IS DISTINCT FROM (EXCLUDED.total, EXCLUDED.event_count, EXCLUDED.key_checksum)`,
          [day, instances, types, lines.map((l) => l.total), lines.map((l) => l.eventCount), lines.map((l) => l.keyChecksum)],
        );
        await client.query('COMMIT');
        return { lines: lines.length, changed: changed.rowCount ?? 0, removed: removed.rowCount ?? 0 };
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      } finally {
        client.release();
      }
    },
  };
}
