// Extending a trial or converting it to paid: Temporal updates on trial-<orgId>, through the
// admin API. Used on an organisation's page (its id fixed) and on the operations page (typed in).
import { Alpine, adminApi, problem } from './session.js';

Alpine.data('trialActions', (orgId = '') => ({
  orgId,
  days: 7,
  paymentType: 'CreditCard',
  last4: '',
  busy: null,
  error: '',
  result: null,
  async extend() {
    await this.act('extend', { days: this.days, by: 'admin-ui' },
      (trial) => `Extended by ${this.days} days: the trial now ends ${trial.endsAt.slice(0, 10)}.`);
  },
  async convert() {
    const paymentMethod = { type: this.paymentType, ...(this.last4 ? { last4: this.last4 } : {}) };
    await this.act('convert', { paymentMethod, by: 'admin-ui' }, () => `Converted to paid with a ${this.paymentType} payment method.`);
  },
  async act(action, body, describe) {
    this.busy = action;
    this.error = '';
    this.result = null;
    try {
      const answer = await adminApi(`/admin/trials/${encodeURIComponent(this.orgId)}/${action}`, { method: 'POST', body });
      this.result = { workflowId: answer.workflowId, temporalUrl: answer.temporalUrl, message: describe(answer.trial) };
      this.$dispatch('trial-changed', answer.trial);
    } catch (err) {
      this.error = problem(err);
    } finally {
      this.busy = null;
    }
  },
}));
