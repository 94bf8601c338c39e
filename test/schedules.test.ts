import { ScheduleOverlapPolicy } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGGREGATION_SCHEDULE_ID, MAINTENANCE_SCHEDULE_ID, RECONCILIATION_SCHEDULE_ID, UPLOAD_SCHEDULE_ID, ensureSchedules } from '../workers/schedules.js';
import { eventually } from './support/eventually.js';
import { startTestTally, type TestTally } from './support/stack.js';

// Schedules take their day from the schedule's time, so a backfill of a past range does those days.

let tally: TestTally;

beforeAll(async () => {
  tally = await startTestTally();
});
afterAll(async () => {
  await tally?.close();
});

/** The workflow's description once it has finished (started by the schedule, so maybe not yet there). */
function waitForCompletion(workflowId: string) {
  return eventually(async () => {
    const description = await tally.temporal.workflow.getHandle(workflowId).describe();
    expect(description.status.name).not.toBe('RUNNING');
    return description;
  });
}

describe('schedules', () => {
  it('are created once and brought up to date on every start', async () => {
    expect(await ensureSchedules(tally.temporal, tally.config.TEMPORAL_TASK_QUEUE)).toEqual(expect.arrayContaining([AGGREGATION_SCHEDULE_ID, UPLOAD_SCHEDULE_ID, MAINTENANCE_SCHEDULE_ID, RECONCILIATION_SCHEDULE_ID]));
    await ensureSchedules(tally.temporal, tally.config.TEMPORAL_TASK_QUEUE);
    const aggregation = await tally.temporal.schedule.getHandle(AGGREGATION_SCHEDULE_ID).describe();
    expect(aggregation.action).toMatchObject({ workflowType: 'scheduledAggregationWorkflow', taskQueue: tally.config.TEMPORAL_TASK_QUEUE });
    expect(aggregation.spec.intervals).toEqual([{ every: 3_600_000, offset: 300_000 }]);
    const upload = await tally.temporal.schedule.getHandle(UPLOAD_SCHEDULE_ID).describe();
    expect(upload.action).toMatchObject({ workflowType: 'scheduledUploadWorkflow' });
  });

  it('settle, on a backfill, the day that closed at the scheduled time, not yesterday', async () => {
    // Data for a past day, straight into BigQuery (no dirty mark): the run that closes the day reads all of it.
    await tally.rawEvents.insert(
      [{ key: 'backfill-1', instanceId: 'inst-backfill', occurredAt: '2026-03-10T04:00:00.000Z', day: '2026-03-10' as never, amounts: { samples: 42 }, metadata: {} }],
      'backfill-batch', '2026-03-10T04:00:01.000Z',
    );
    const schedule = tally.temporal.schedule.getHandle(AGGREGATION_SCHEDULE_ID);
    await schedule.backfill({ start: new Date('2026-03-11T05:00:00Z'), end: new Date('2026-03-11T05:59:59Z'), overlap: ScheduleOverlapPolicy.ALLOW_ALL });
    const day = await waitForCompletion('aggregate-2026-03-10');
    expect(day.status.name).toBe('COMPLETED');
    expect(day.searchAttributes.BillingDay).toEqual(['2026-03-10']);
    // What the README tells operators to type into the Temporal UI's search.
    const found = await eventually(async () => {
      const ids: string[] = [];
      for await (const wf of tally.temporal.workflow.list({ query: `BillingDay = '2026-03-10'` })) ids.push(wf.workflowId);
      expect(ids).toContain('aggregate-2026-03-10');
      return ids;
    });
    expect(found.every((id) => id.endsWith('2026-03-10'))).toBe(true);
    const { rows } = await tally.db.query("SELECT internal_instance_id, total FROM usage_daily WHERE billing_day = '2026-03-10'");
    expect(rows).toEqual([{ internal_instance_id: 'inst-backfill', total: '42' }]);
    expect((await tally.db.query("SELECT 1 FROM closed_days WHERE billing_day = '2026-03-10'")).rowCount).toBe(1);
  });
});
