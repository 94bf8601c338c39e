// The operator's session: the admin token kept in sessionStorage (gone when the tab closes), every
// admin API call made with it, and the start of each page's Alpine components.
import Alpine from '../vendor/alpine/module.esm.js';

export { Alpine };

const TOKEN_KEY = 'tally.adminToken';

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  save: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An error the API answered with: its code to branch on, its message to show. */
export class AdminApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `the API answered ${status}`);
    this.status = status;
    this.code = body?.code ?? `HTTP_${status}`;
    this.field = body?.field;
  }
}

/** Calls the admin API with the operator token; a refused token sends the operator back to the login form. */
export async function adminApi(path, { method = 'GET', body, token = session.token() } = {}) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.status === 401 && token === session.token()) {
    session.clear();
    toLogin();
  }
  if (!res.ok) throw new AdminApiError(res.status, answer);
  return answer;
}

function toLogin() {
  const here = location.pathname.split('/').pop() + location.search;
  location.assign(`index.html?next=${encodeURIComponent(here)}`);
}

const PAGES = [
  ['organisations', 'Organisations'],
  ['operations', 'Operations'],
  ['workflows', 'Failed workflows'],
  ['reconciliation', 'Reconciliation'],
];

/** The navigation bar, the same on every page: drawn into `<header data-nav="<current page>">`. */
function drawNavigation() {
  const header = document.querySelector('header[data-nav]');
  if (!header) return;
  const links = PAGES.map(([page, title]) =>
    `<li><a href="${page}.html"${page === header.dataset.nav ? ' aria-current="page"' : ''}>${title}</a></li>`).join('');
  header.innerHTML = `<nav x-data="navigation" aria-label="Admin pages"><ul><li><strong>Tally admin</strong></li></ul>
    <ul>${links}<li><button type="button" class="outline secondary" @click="logout">Sign out</button></li></ul></nav>`;
}

/** Draws the navigation bar and starts Alpine; a page opened without a token goes to the login form first. */
export function startPage() {
  if (!session.token()) return toLogin();
  drawNavigation();
  Alpine.data('navigation', () => ({
    logout() {
      session.clear();
      location.assign('index.html');
    },
  }));
  Alpine.start();
  // Tests (and anyone scripting the page) wait for this: the page's handlers are bound.
  document.body.dataset.ready = 'true';
}

/** Today as a billing day (UTC), and days around it. */
export function billingDay(offsetDays = 0) {
  return new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);
}

/** Every billing day from `from` to `to`, both included. */
export function daysBetween(from, to) {
  const days = [];
  for (let d = new Date(`${from}T00:00:00Z`); d.toISOString().slice(0, 10) <= to; d.setUTCDate(d.getUTCDate() + 1)) {
    days.push(d.toISOString().slice(0, 10));
  }
  return days;
}

/** A decimal quantity string with thousands separators, its digits untouched (never through a float). */
export function quantity(value) {
  if (value === null || value === undefined) return '—';
  const [whole, fraction] = String(value).split('.');
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return fraction === undefined ? grouped : `${grouped}.${fraction}`;
}

/** An instant as operators read it: UTC, to the minute. */
export function instant(iso) {
  if (!iso) return '—';
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/** The message shown for a failed call: what the API said, and its code. */
export function problem(err) {
  return err instanceof AdminApiError ? `${err.message} (${err.code})` : `The request did not complete: ${err.message}`;
}

const STATUS_LABELS = { trial: 'Trial', trial_expired: 'Trial expired', paid: 'Paid', cancelled: 'Cancelled' };

/** An organisation's billing status in words. */
export function statusLabel(status) {
  return STATUS_LABELS[status] ?? status;
}
