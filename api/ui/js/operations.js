// Operations: start a day's aggregation, upload or reconciliation, a backfill of a range, or act
// on a trial. Every start answers { workflowId, runId, temporalUrl }, listed newest first.
import { Alpine, adminApi, billingDay, problem, startPage } from './session.js';
import './trial-actions.js';

const DAY_WORK = {
  aggregation: { path: '/admin/aggregations', title: (day) => `Aggregation of ${day}` },
  upload: { path: '/admin/uploads', title: (day) => `Upload of ${day}` },
  reconciliation: { path: '/admin/reconciliations', title: (day) => `Reconciliation of ${day}` },
};

Alpine.data('operations', () => {
  let count = 0;
  return {
    day: new URLSearchParams(location.search).get('day') ?? billingDay(-1),
    backfillFrom: billingDay(-7),
    backfillTo: billingDay(-1),
    busy: null,
    started: [],
    startDay(kind) {
      const work = DAY_WORK[kind];
      return this.start(kind, work.title(this.day), work.path, { day: this.day });
    },
    async startBackfill() {
      const entry = await this.start('backfill', `Backfill of ${this.backfillFrom} to ${this.backfillTo}`, '/admin/backfills', { from: this.backfillFrom, to: this.backfillTo });
      if (entry.workflowId) await this.follow(entry);
    },
    /** A backfill takes a while: its progress (the workflow's query) until it ends. */
    async follow(entry) {
      for (;;) {
        try {
          const { status, progress } = await adminApi(`/admin/backfills/${encodeURIComponent(entry.workflowId)}`);
          const restated = progress.restated ? `, ${progress.restated} lines restated` : '';
          entry.progress = `${progress.done} of ${progress.total} days${restated}${status === 'RUNNING' ? '…' : ` · ${status.toLowerCase()}`}`;
          if (status !== 'RUNNING') return;
        } catch (err) {
          entry.progress = `progress unknown: ${problem(err)}`;
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    },
    async start(kind, title, path, body) {
      this.busy = kind;
      const entry = { key: ++count, title, progress: '' };
      try {
        const answer = await adminApi(path, { method: 'POST', body });
        Object.assign(entry, { workflowId: answer.workflowId, temporalUrl: answer.temporalUrl });
      } catch (err) {
        entry.error = problem(err);
      } finally {
        this.busy = null;
      }
      this.started.unshift(entry);
      // The list's own (reactive) copy, so later progress shows.
      return this.started[0];
    },
  };
});

startPage();
