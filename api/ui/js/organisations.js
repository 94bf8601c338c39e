// Organisations: search by id, name or instance, filter by status, page through.
import { Alpine, adminApi, instant, problem, startPage, statusLabel } from './session.js';

Alpine.data('organisations', () => {
  const params = new URLSearchParams(location.search);
  // Typing sends a request per pause: only the answer to the latest one is shown.
  let latest = 0;
  return {
    search: params.get('search') ?? '',
    status: params.get('status') ?? '',
    organisations: [],
    total: 0,
    offset: 0,
    limit: 50,
    busy: false,
    error: '',
    instant,
    statusLabel,
    init() {
      return this.load(0);
    },
    async load(offset) {
      const query = new URLSearchParams({ limit: String(this.limit), offset: String(offset) });
      if (this.search) query.set('search', this.search);
      if (this.status) query.set('status', this.status);
      // The search stays in the address, so going back from an organisation returns to it.
      const kept = new URLSearchParams({ ...(this.search && { search: this.search }), ...(this.status && { status: this.status }) });
      history.replaceState(null, '', kept.size ? `?${kept}` : location.pathname);
      this.busy = true;
      const request = ++latest;
      try {
        const page = await adminApi(`/admin/organisations?${query}`);
        if (request !== latest) return;
        Object.assign(this, { organisations: page.organisations, total: page.total, offset: page.offset, error: '' });
      } catch (err) {
        this.error = problem(err);
      } finally {
        this.busy = false;
      }
    },
  };
});

startPage();
