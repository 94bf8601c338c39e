// Failed and stuck workflows, from Temporal's visibility store through the admin API.
import { Alpine, adminApi, instant, problem, startPage } from './session.js';

const STATUS_TEXT = { FAILED: 'Failed', TIMED_OUT: 'Timed out', TERMINATED: 'Terminated', RUNNING: 'Running' };

Alpine.data('workflowProblems', () => ({
  days: 7,
  olderThanMinutes: 120,
  failed: { busy: false, error: '', workflows: [] },
  stuck: { busy: false, error: '', workflows: [] },
  instant,
  statusText: (status) => STATUS_TEXT[status] ?? status,
  init() {
    this.loadFailed();
    this.loadStuck();
  },
  loadFailed() {
    return this.load(this.failed, `/admin/workflows/failed?days=${this.days}`);
  },
  loadStuck() {
    return this.load(this.stuck, `/admin/workflows/stuck?olderThanMinutes=${this.olderThanMinutes}`);
  },
  async load(list, path) {
    list.busy = true;
    try {
      list.workflows = (await adminApi(path)).workflows;
      list.error = '';
    } catch (err) {
      list.error = problem(err);
    } finally {
      list.busy = false;
    }
  },
}));

startPage();
