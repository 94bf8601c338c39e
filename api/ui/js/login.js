// The login form: checks the token against the admin API before keeping it.
import { Alpine, adminApi, AdminApiError, session } from './session.js';

/** Only a page of this UI is a place to go back to after signing in. */
function nextPage() {
  const next = new URLSearchParams(location.search).get('next') ?? '';
  return /^[a-z-]+\.html(\?[^#]*)?$/.test(next) ? next : 'organisations.html';
}

Alpine.data('login', () => ({
  token: '',
  error: '',
  busy: false,
  async signIn() {
    this.busy = true;
    this.error = '';
    try {
      await adminApi('/admin/organisations?limit=1', { token: this.token });
      session.save(this.token);
      location.assign(nextPage());
    } catch (err) {
      this.error = err instanceof AdminApiError && err.status === 401
        ? 'That token was refused: check it and try again.'
        : err instanceof AdminApiError && err.code === 'ADMIN_DISABLED'
          ? 'The admin API is closed on this server: set ADMIN_TOKEN and restart it.'
          : `Could not sign in: ${err.message}`;
    } finally {
      this.busy = false;
    }
  },
}));

Alpine.start();
