// Reconciliation drift: the latest run of each day and the differences it recorded.
import { Alpine, adminApi, billingDay, instant, problem, quantity, startPage } from './session.js';

/** What each kind of difference means for an operator (activities/reconcile.ts decides them). */
const KINDS = {
  not_uploaded: 'Not uploaded',
  ledger_behind: 'Ledger behind usage',
  missing_in_zuora: 'Missing in Zuora',
  quantity_differs: 'Zuora quantity differs',
  unknown_in_zuora: 'In Zuora only',
};

Alpine.data('reconciliation', () => ({
  from: billingDay(-29),
  to: billingDay(0),
  days: [],
  differences: [],
  truncated: false,
  dayFilter: '',
  kindFilter: '',
  busy: false,
  error: '',
  kinds: KINDS,
  instant,
  quantity,
  init() {
    return this.load();
  },
  shown() {
    return this.differences.filter((d) => (!this.dayFilter || d.day === this.dayFilter) && (!this.kindFilter || d.kind === this.kindFilter));
  },
  async load() {
    this.busy = true;
    try {
      const answer = await adminApi(`/admin/reconciliations?from=${this.from}&to=${this.to}`);
      Object.assign(this, { days: answer.days, differences: answer.differences, truncated: answer.truncated, error: '' });
    } catch (err) {
      this.error = problem(err);
    } finally {
      this.busy = false;
    }
  },
}));

startPage();
