import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { defineQuery, executeChild, setCurrentDetails, setHandler, sleep, upsertMemo } from '@temporalio/workflow';
import { daysBetween, type BillingDay } from '../core/billing-day.js';
import { aggregateDayWorkflow } from './aggregate.js';
import { billingDaySearchAttribute } from './search-attributes.js';

export interface BackfillProgress {
  from: BillingDay;
  to: BillingDay;
  total: number;
  done: number;
  current: BillingDay | null;
  /** Lines changed and restated over the days done so far. */
  changed: number;
  restated: number;
}

export const backfillProgress = defineQuery<BackfillProgress>('backfillProgress');

export function backfillWorkflowId(from: BillingDay, to: BillingDay): string {
  return `backfill-${from}-${to}`;
}

/**
 * backfill-<from>-<to>: recomputes every day of the range in full, one aggregate-<day> child at a
 * time, from BigQuery into Postgres. Durable: a worker crash resumes at the day it was on. The
 * progress is a query (the CLI's bar), the run's current details and memo (the Temporal UI).
 */
export async function backfillWorkflow(from: BillingDay, to: BillingDay): Promise<BackfillProgress> {
  const days = daysBetween(from, to);
  const progress: BackfillProgress = { from, to, total: days.length, done: 0, current: null, changed: 0, restated: 0 };
  setHandler(backfillProgress, () => progress);
  const show = () => {
    setCurrentDetails(`**${progress.done} of ${progress.total} days** recomputed${progress.current ? `; now ${progress.current}` : ''}. ` +
      `${progress.changed} lines changed, ${progress.restated} restated.`);
    upsertMemo({ progress: `${progress.done}/${progress.total}` });
  };
  show();
  for (const day of days) {
    progress.current = day;
    show();
    for (;;) {
      try {
        const result = await executeChild(aggregateDayWorkflow, {
          workflowId: `aggregate-${day}`,
          args: [day, { scope: 'full', reason: 'backfill' }],
          typedSearchAttributes: [billingDaySearchAttribute(day)],
        });
        progress.changed += result.changed;
        progress.restated += result.restated;
        break;
      } catch (err) {
        // The schedule is recomputing this day right now: a full recompute must still follow it.
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        await sleep('5 seconds');
      }
    }
    progress.done++;
  }
  progress.current = null;
  show();
  return progress;
}
