// One organisation: usage (chart, live), trial (timeline, actions), uploads, restatements, invoices.
// Each section loads on its own, so Zuora being slow or down leaves the rest readable.
import { Alpine, adminApi, billingDay, instant, problem, quantity, startPage, statusLabel } from './session.js';
import { trialTimeline } from './trial-timeline.js';
import { drawUsageChart } from './usage-chart.js';
import './trial-actions.js';

const section = (extra = {}) => ({ busy: false, error: '', lines: [], ...extra });

Alpine.data('organisation', () => {
  const orgId = new URLSearchParams(location.search).get('id') ?? '';
  const base = `/admin/organisations/${encodeURIComponent(orgId)}`;
  return {
    orgId,
    from: billingDay(-29),
    to: billingDay(0),
    org: null,
    error: '',
    trial: null,
    trialError: '',
    timeline: [],
    usage: { busy: false, error: '', from: '', to: '', daily: [], live: [] },
    uploads: section(),
    restatements: section(),
    invoices: section(),
    instant,
    quantity,
    statusLabel,
    init() {
      if (!orgId) {
        this.error = 'No organisation given: open one from the organisations page.';
        return;
      }
      this.loadOrganisation();
      this.loadRange();
      this.load(this.invoices, `${base}/invoices`, (answer) => answer.invoices);
    },
    async loadOrganisation() {
      try {
        const answer = await adminApi(base);
        this.org = answer.organisation;
        document.title = `${answer.organisation.name} · Tally admin`;
        this.trial = answer.trial;
        this.trialError = answer.trialError ? `${answer.trialError.message} (${answer.trialError.code})` : '';
        this.timeline = trialTimeline(answer.trial, answer.notifications, answer.organisation);
      } catch (err) {
        this.error = problem(err);
      }
    },
    loadRange() {
      const range = `from=${this.from}&to=${this.to}`;
      this.loadUsage(range);
      this.load(this.uploads, `${base}/uploads?${range}`, (answer) => answer.uploads);
      this.load(this.restatements, `${base}/restatements?${range}`, (answer) => answer.restatements);
    },
    async loadUsage(range) {
      this.usage.busy = true;
      try {
        const answer = await adminApi(`${base}/usage?${range}`);
        const aggregated = new Map(answer.daily.map((line) => [`${line.day}|${line.amountType}`, line.total]));
        Object.assign(this.usage, {
          error: '', from: answer.from, to: answer.to, daily: answer.daily,
          live: answer.live.map((line) => ({ ...line, aggregated: aggregated.get(`${line.day}|${line.amountType}`) ?? null })).reverse(),
        });
        // Chart.js keeps its own state: it gets plain data, never Alpine's reactive proxies.
        drawUsageChart(document.getElementById('usage-chart'), Alpine.raw({ from: answer.from, to: answer.to, daily: answer.daily }));
      } catch (err) {
        this.usage.error = problem(err);
      } finally {
        this.usage.busy = false;
      }
    },
    async load(part, path, pick) {
      part.busy = true;
      try {
        part.lines = pick(await adminApi(path));
        part.error = '';
      } catch (err) {
        part.error = problem(err);
      } finally {
        part.busy = false;
      }
    },
  };
});

startPage();
