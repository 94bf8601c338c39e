import fastifyStatic from '@fastify/static';
import fp from 'fastify-plugin';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

/** The folder of an installed package's file: the UI's libraries come from node_modules, never a CDN. */
const packageDir = (file: string) => path.dirname(require.resolve(file));

/** What the pages load from node_modules, under /admin/ui/vendor/<name>/. */
const VENDOR = [
  { name: 'alpine', root: packageDir('alpinejs'), files: ['module.esm.js'] },
  { name: 'pico', root: packageDir('@picocss/pico'), files: ['pico.min.css'] },
  { name: 'chart', root: packageDir('chart.js'), files: ['chart.umd.min.js'] },
];

export const ADMIN_UI_PREFIX = '/admin/ui/';

/**
 * The operators' admin UI: static pages (api/ui) that call the admin API with the operator token
 * the login form keeps in sessionStorage. The pages themselves are public (admin-auth leaves
 * /admin/ui open); every piece of data they show comes through an authenticated /admin call.
 */
export const adminUiPlugin = fp(async (app) => {
  await app.register(fastifyStatic, {
    root: fileURLToPath(new URL('../ui/', import.meta.url)),
    prefix: ADMIN_UI_PREFIX,
    index: 'index.html',
    // The UI changes with the API it calls: always ask whether a page is still current.
    cacheControl: false,
    setHeaders: (reply) => reply.header('cache-control', 'no-cache'),
  });
  // Relative links in the pages need the trailing slash.
  app.get('/admin/ui', { schema: { hide: true } }, (_req, reply) => reply.redirect(ADMIN_UI_PREFIX, 301));
  for (const { name, root, files } of VENDOR) {
    await app.register(fastifyStatic, {
      root,
      prefix: `${ADMIN_UI_PREFIX}vendor/${name}/`,
      decorateReply: false,
      index: false,
      // Only the files a page loads: the rest of the package is not the UI's to serve.
      allowedPath: (pathName) => files.includes(pathName.replace(/^\//, '')),
    });
  }
});
