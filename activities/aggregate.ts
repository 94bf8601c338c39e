import { Context } from '@temporalio/activity';
import type pg from 'pg';
import { addDays, dayClosesAt, lastClosableDay, type BillingDay } from '../core/billing-day.js';
import { inTransaction } from '../db/pool.js';
import type { DailyUsageLine, RawEventStore } from './raw-events.js';

/** What asked for the recompute: it becomes the reason of any restatement it makes. */
export type AggregateReason = 'scheduled' | 'backfill' | 'recompute';

export interface AggregateOptions {
  /** `dirty`: only customers with events since their last aggregation (no scan when none); `full`: every customer of the day. */
  scope: 'dirty' | 'full';
  reason: AggregateReason;
}

export interface AggregateResult {
  lines: number;
  /** Lines inserted or whose total, count or checksum changed. */
  changed: number;
  /** Lines that no longer have any event (removed raw rows). */
  removed: number;
  /** Whether BigQuery was read at all: a dirty-days run with nothing dirty reads nothing. */
  scanned: boolean;
  /** Customers recomputed (every customer of the day for a full run). */
  customers: number;
  /** Whether this run settled and closed the day. */
  closedDay: boolean;
  /** Changes to a day already closed, each recorded in usage_restatements. */
  restated: number;
}

/** Above this many dirty customers one scan of the whole partition is cheaper than a long IN list. */
const MAX_FILTERED_CUSTOMERS = 5_000;

interface StoredLine { internal_instance_id: string; amount_type: string; total: string; event_count: number; key_checksum: string }

const lineKey = (instance: string, amountType: string) => `${instance}\u0000${amountType}`;

export function createAggregateActivities(deps: { db: pg.Pool; rawEvents: RawEventStore; closeDelayHours: number; backdatingWindowDays: number }) {
  return {
    /**
     * Makes the day's usage lines in Postgres equal to the deduplicated raw events, for every
     * customer (`full`) or for those marked dirty by ingest (`dirty`). Idempotent. The first run
     * after the day's close time closes it; later changes to a closed day are restatements,
     * recorded with their reason, that the upload turns into corrections.
     */
    async aggregateDay(day: BillingDay, options: AggregateOptions = { scope: 'full', reason: 'recompute' }): Promise<AggregateResult> {
      const workflowId = activityWorkflowId();
      const marks = (await deps.db.query<{ internal_instance_id: string; generation: string; late: boolean }>(
        'SELECT internal_instance_id, generation, late FROM dirty_days WHERE billing_day = $1', [day],
      )).rows;
      // The run that closes a day reads all of it once, whatever its marks say: the settled day is
      // what gets billed, and a day whose raw events came by another way than ingest is still right.
      const settling = dayClosesAt(day, deps.closeDelayHours).getTime() <= Date.now()
        && (await deps.db.query('SELECT 1 FROM closed_days WHERE billing_day = $1', [day])).rowCount === 0;
      const scope = settling ? 'full' : options.scope;
      const filtered = scope === 'dirty' && marks.length <= MAX_FILTERED_CUSTOMERS;
      const scan = scope === 'full' || marks.length > 0;
      const fresh = scan ? await deps.rawEvents.dailyUsage(day, filtered ? marks.map((m) => m.internal_instance_id) : undefined) : [];
      const customers = filtered ? marks.map((m) => m.internal_instance_id) : null; // null: all of them

      const { upserts, removals, closesNow, restated } = await inTransaction(deps.db, async (client) => {
        const storedRows = (await client.query<StoredLine>(
          `SELECT internal_instance_id, amount_type, total, event_count, key_checksum FROM usage_daily
           WHERE billing_day = $1 AND ($2::text[] IS NULL OR internal_instance_id = ANY($2)) FOR UPDATE`,
          [day, customers],
        )).rows;
        const stored = new Map(storedRows.map((r) => [lineKey(r.internal_instance_id, r.amount_type), r]));
        const wasClosed = (await client.query('SELECT 1 FROM closed_days WHERE billing_day = $1 FOR UPDATE', [day])).rowCount! > 0;
        const closesNow = !wasClosed && settling;
        const { upserts, removals } = diff(stored, fresh, scan);
        // An open day forgets a line with no events left; a closed one keeps it at zero so the upload corrects Zuora too.
        const zeroed = wasClosed ? removals.map((l) => ({ ...l, total: '0', eventCount: 0, keyChecksum: '0' })) : [];
        const writes = [...upserts, ...zeroed];
        if (writes.length > 0) {
          await client.query(
            `INSERT INTO usage_daily (internal_instance_id, billing_day, amount_type, total, event_count, key_checksum)
             SELECT i, $1::date, t, total, n, c
             FROM unnest($2::text[], $3::text[], $4::numeric[], $5::bigint[], $6::text[]) AS l(i, t, total, n, c)
             ON CONFLICT (internal_instance_id, billing_day, amount_type) DO UPDATE
               SET total = EXCLUDED.total, event_count = EXCLUDED.event_count, key_checksum = EXCLUDED.key_checksum, computed_at = now()`,
            [day, writes.map((l) => l.internalInstanceId), writes.map((l) => l.amountType), writes.map((l) => l.total), writes.map((l) => l.eventCount), writes.map((l) => l.keyChecksum)],
          );
        }
        if (!wasClosed && removals.length > 0) {
          await client.query(
            `DELETE FROM usage_daily WHERE billing_day = $1
             AND (internal_instance_id, amount_type) IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
            [day, removals.map((l) => l.internalInstanceId), removals.map((l) => l.amountType)],
          );
        }
        let restated = 0;
        if (wasClosed && writes.length > 0) {
          const late = new Set(marks.filter((m) => m.late).map((m) => m.internal_instance_id));
          restated = await recordRestatements(client, day, writes, stored, (instance) =>
            options.reason === 'backfill' ? 'backfill' : late.has(instance) ? 'late-usage' : 'recompute', workflowId);
        }
        if (closesNow) await client.query('INSERT INTO closed_days (billing_day, workflow_id) VALUES ($1, $2)', [day, workflowId]);
        // Clear the marks this run saw; a mark re-made since (a newer generation) stays for the next run.
        if (scan && marks.length > 0) {
          await client.query(
            `DELETE FROM dirty_days WHERE billing_day = $1
             AND (internal_instance_id, generation) IN (SELECT * FROM unnest($2::text[], $3::bigint[]))`,
            [day, marks.map((m) => m.internal_instance_id), marks.map((m) => m.generation)],
          );
        }
        return { upserts, removals, closesNow, restated };
      });
      const lines = (await deps.db.query<{ n: number }>('SELECT count(*)::int AS n FROM usage_daily WHERE billing_day = $1', [day])).rows[0]!.n;
      return {
        lines, changed: upserts.length, removed: removals.length, scanned: scan,
        customers: customers?.length ?? new Set(fresh.map((l) => l.internalInstanceId)).size,
        closedDay: closesNow, restated,
      };
    },

    /**
     * The days an aggregation run should visit at `asOf`: days with dirty customers, days past their
     * close time that still have to be closed (with usage lines, within the backdating window), and
     * the last day due to close at `asOf`, so a schedule backfill of a past range settles its days.
     */
    async daysToAggregate(asOf: string): Promise<BillingDay[]> {
      const closable = lastClosableDay(new Date(asOf), deps.closeDelayHours);
      const oldest = addDays(closable, -deps.backdatingWindowDays - 1);
      const { rows } = await deps.db.query<{ day: string }>(
        `SELECT to_char(billing_day, 'YYYY-MM-DD') AS day FROM dirty_days
         UNION
         SELECT DISTINCT to_char(u.billing_day, 'YYYY-MM-DD') FROM usage_daily u
         WHERE u.billing_day BETWEEN $1 AND $2 AND NOT EXISTS (SELECT 1 FROM closed_days c WHERE c.billing_day = u.billing_day)
         UNION
         SELECT to_char($2::date, 'YYYY-MM-DD') WHERE NOT EXISTS (SELECT 1 FROM closed_days WHERE billing_day = $2::date)
         ORDER BY 1`,
        [oldest, closable],
      );
      return rows.map((r) => r.day as BillingDay);
    },
  };
}

/** Which stored lines change and which disappear, given what BigQuery says now. */
function diff(before: ReadonlyMap<string, StoredLine>, fresh: DailyUsageLine[], scanned: boolean): { upserts: DailyUsageLine[]; removals: DailyUsageLine[] } {
  const upserts = fresh.filter((l) => {
    const s = before.get(lineKey(l.internalInstanceId, l.amountType));
    return !s || s.total !== l.total || s.event_count !== l.eventCount || s.key_checksum !== l.keyChecksum;
  });
  if (!scanned) return { upserts, removals: [] };
  const now = new Set(fresh.map((l) => lineKey(l.internalInstanceId, l.amountType)));
  // A line already kept at zero (a closed day's vanished line) is not removed again.
  const removals = [...before.entries()]
    .filter(([key, s]) => !now.has(key) && !(s.total === '0' && s.event_count === 0))
    .map(([, s]) => ({ internalInstanceId: s.internal_instance_id, amountType: s.amount_type, total: s.total, eventCount: s.event_count, keyChecksum: s.key_checksum }));
  return { upserts, removals };
}

async function recordRestatements(
  client: pg.PoolClient,
  day: BillingDay,
  writes: DailyUsageLine[],
  before: ReadonlyMap<string, StoredLine>,
  reasonOf: (instance: string) => string,
  workflowId: string | null,
): Promise<number> {
  const previous = (l: DailyUsageLine) => before.get(lineKey(l.internalInstanceId, l.amountType));
  // A checksum-only change (the same events, fingerprinted another way) is not a restatement.
  const changed = writes.filter((l) => {
    const s = previous(l);
    return !s || s.total !== l.total || s.event_count !== l.eventCount;
  });
  if (changed.length === 0) return 0;
  // uploaded_before: Zuora already holds a completed record for the line, so the next upload is a correction.
  await client.query(
    `INSERT INTO usage_restatements (internal_instance_id, billing_day, amount_type, previous_total, new_total,
                                     previous_event_count, new_event_count, reason, uploaded_before, workflow_id)
     SELECT l.i, $1::date, l.t, l.pt, l.nt, l.pn, l.nn, l.r,
            EXISTS (SELECT 1 FROM upload_ledger u JOIN organisations o ON o.id = u.org_id
                    WHERE o.internal_instance_id = l.i AND u.billing_day = $1::date AND u.amount_type = l.t AND u.status = 'completed'),
            $2
     FROM unnest($3::text[], $4::text[], $5::numeric[], $6::numeric[], $7::bigint[], $8::bigint[], $9::text[]) AS l(i, t, pt, nt, pn, nn, r)`,
    [
      day, workflowId,
      changed.map((l) => l.internalInstanceId), changed.map((l) => l.amountType),
      changed.map((l) => previous(l)?.total ?? null), changed.map((l) => l.total),
      changed.map((l) => previous(l)?.event_count ?? null), changed.map((l) => l.eventCount),
      changed.map((l) => reasonOf(l.internalInstanceId)),
    ],
  );
  return changed.length;
}

function activityWorkflowId(): string | null {
  try {
    return Context.current().info.workflowExecution?.workflowId ?? null;
  } catch {
    return null; // called outside an activity (a benchmark, a script)
  }
}
