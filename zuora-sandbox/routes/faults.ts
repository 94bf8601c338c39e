import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { FaultSettings } from '../faults.js';
import type { SandboxServices } from '../services.js';

/**
 * `/sandbox/faults`: the fault switches, for tests and operators; no token, and nothing Zuora
 * has. Every answer is `{ faults, rateLimit }`: the faults now on (counters as they stand) and the
 * API quota of the current window.
 */
export const faultRoutes: FastifyPluginAsyncTypebox<SandboxServices> = async (app, { faults, rateLimiter }) => {
  const view = () => ({ faults: faults.show(), rateLimit: rateLimiter.peek('API') });

  app.get('/faults', async () => view());

  /** These faults and no others. */
  app.put('/faults', { schema: { body: FaultSettings } }, async (request) => {
    faults.replace(request.body);
    return view();
  });

  /** These faults on top of the ones already on; `false` or 0 turns one off. */
  app.post('/faults', { schema: { body: FaultSettings } }, async (request) => {
    faults.merge(request.body);
    return view();
  });

  /** Every fault off. */
  app.delete('/faults', async () => {
    faults.clear();
    return view();
  });
};
