import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleOptionsAction } from '@temporalio/client';

export const AGGREGATION_SCHEDULE_ID = 'tally-aggregation-hourly';
export const UPLOAD_SCHEDULE_ID = 'tally-upload-daily';
export const MAINTENANCE_SCHEDULE_ID = 'tally-maintenance-daily';
export const RECONCILIATION_SCHEDULE_ID = 'tally-reconciliation-daily';
export const TRIAL_SWEEP_SCHEDULE_ID = 'tally-trial-sweep-hourly';

interface TallySchedule {
  scheduleId: string;
  action: ScheduleOptionsAction;
  spec: { intervals?: { every: string; offset?: string }[]; calendars?: { hour: number; minute: number }[] };
  note: string;
}

/** Creates Tally's Schedules, or brings existing ones up to date: safe at every start. */
export async function ensureSchedules(client: Client, taskQueue: string): Promise<string[]> {
  const schedules: TallySchedule[] = [
    {
      scheduleId: AGGREGATION_SCHEDULE_ID,
      note: 'Recomputes the open days (yesterday and today) from BigQuery into usage_daily.',
      spec: { intervals: [{ every: '1 hour', offset: '5 minutes' }] },
      action: { type: 'startWorkflow', workflowType: 'scheduledAggregationWorkflow', workflowId: 'aggregation-hourly', taskQueue, args: [] },
    },
    {
      scheduleId: UPLOAD_SCHEDULE_ID,
      note: "Settles yesterday and uploads it to Zuora.",
      spec: { calendars: [{ hour: 2, minute: 0 }] },
      action: { type: 'startWorkflow', workflowType: 'scheduledUploadWorkflow', workflowId: 'upload-daily', taskQueue, args: [] },
    },
    {
      scheduleId: RECONCILIATION_SCHEDULE_ID,
      note: "Compares yesterday's usage, upload ledger and Zuora's records, and records every difference.",
      spec: { calendars: [{ hour: 4, minute: 0 }] },
      action: { type: 'startWorkflow', workflowType: 'scheduledReconciliationWorkflow', workflowId: 'reconciliation-daily', taskQueue, args: [] },
    },
    {
      scheduleId: MAINTENANCE_SCHEDULE_ID,
      note: 'Creates the key ledger partitions ahead, drops the expired weeks, and prunes the ingest outbox.',
      spec: { calendars: [{ hour: 0, minute: 30 }] },
      action: { type: 'startWorkflow', workflowType: 'maintainKeyLedgerWorkflow', workflowId: 'maintenance-daily', taskQueue, args: [] },
    },
    {
      scheduleId: TRIAL_SWEEP_SCHEDULE_ID,
      note: 'Starts the trial workflow of every organisation in trial that has none running.',
      spec: { intervals: [{ every: '1 hour', offset: '20 minutes' }] },
      action: { type: 'startWorkflow', workflowType: 'trialSweepWorkflow', workflowId: 'trial-sweep-hourly', taskQueue, args: [] },
    },
  ];
  for (const s of schedules) {
    const handle = client.schedule.getHandle(s.scheduleId);
    try {
      await handle.update((previous) => ({ ...previous, spec: s.spec, action: s.action }));
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
      await client.schedule.create({
        scheduleId: s.scheduleId,
        spec: s.spec,
        action: s.action,
        memo: { note: s.note },
        // A run that is still going when the next is due: the next one waits, none is dropped.
        policies: { overlap: ScheduleOverlapPolicy.BUFFER_ONE, catchupWindow: '1 day' },
      });
    }
  }
  return schedules.map((s) => s.scheduleId);
}
