import { createHash, timingSafeEqual } from 'node:crypto';
import fp from 'fastify-plugin';

/** Paths that are public even under /admin: the admin UI's own page and assets (its data calls are not). */
const PUBLIC_ADMIN_PREFIXES = ['/admin/ui'];

/**
 * Operators' credential, separate from producer keys and organisation tokens: every route under
 * /admin needs `Authorization: Bearer <ADMIN_TOKEN>`. Applied by path, so a new admin route is
 * covered without anyone remembering to add a hook; with no ADMIN_TOKEN configured, admin is closed.
 */
export const adminAuthPlugin = fp(async (app) => {
  const token = app.deps.config.ADMIN_TOKEN;
  const expected = token ? digest(token) : null;
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?', 1)[0]!;
    if (!(path === '/admin' || path.startsWith('/admin/'))) return;
    if (PUBLIC_ADMIN_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`))) return;
    if (!expected) {
      return reply.code(403).send({ code: 'ADMIN_DISABLED', message: 'admin routes are closed: set ADMIN_TOKEN to open them' });
    }
    const header = req.headers.authorization;
    if (!header) return reply.code(401).send({ code: 'ADMIN_TOKEN_MISSING', message: 'send the operator token as "Authorization: Bearer <ADMIN_TOKEN>"' });
    const given = header.replace(/^Bearer\s+/i, '');
    if (!timingSafeEqual(digest(given), expected)) {
      return reply.code(401).send({ code: 'ADMIN_TOKEN_INVALID', message: 'the operator token is not valid' });
    }
  });
});

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
