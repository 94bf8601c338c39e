// Extending a trial or converting it to paid: Temporal updates on trial-<orgId>, through the
// admin API. Used on an organisation's page (its id fixed) and on the operations page (typed in).
import { Alpine, adminApi, problem } from './session.js';

// The forms, the same on both pages: drawn into each `<div data-trial-actions>` before Alpine starts.
const FORMS = `
<div class="grid">
  <form @submit.prevent="extend" aria-label="Extend the trial">
    <label>Extend by days <input type="number" name="days" min="1" max="365" required x-model.number="days"></label>
    <button type="submit" :aria-busy="busy === 'extend' ? 'true' : 'false'" :disabled="busy || !orgId">Extend trial</button>
  </form>
  <form @submit.prevent="convert" aria-label="Convert to paid">
    <label>Payment method
      <select name="paymentType" x-model="paymentType">
        <option value="CreditCard">Credit card</option><option value="ACH">ACH</option><option value="PayPal">PayPal</option>
      </select>
    </label>
    <label>Last 4 digits (optional) <input name="last4" inputmode="numeric" pattern="\\d{4}" maxlength="4" x-model="last4"></label>
    <button type="submit" class="secondary" :aria-busy="busy === 'convert' ? 'true' : 'false'" :disabled="busy || !orgId">Convert to paid</button>
  </form>
</div>
<div role="status" aria-live="polite">
  <p class="error" x-show="error" x-text="error"></p>
  <p class="started" x-show="result" x-cloak>
    <span x-text="result?.message"></span> Workflow <code x-text="result?.workflowId"></code>:
    <a :href="result?.temporalUrl" target="_blank" rel="noopener">open in the Temporal UI</a>
  </p>
</div>`;
for (const el of document.querySelectorAll('[data-trial-actions]')) el.insertAdjacentHTML('beforeend', FORMS);

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
