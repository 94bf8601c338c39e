import fp from 'fastify-plugin';
import type { onRequestHookHandler } from 'fastify';
import { isPostgresUnavailable } from '../../db/pool.js';
import { ApiKeys, type ApiKeyScope } from '../api-keys.js';

declare module 'fastify' {
  interface FastifyInstance {
    apiKeys: ApiKeys;
    /** An onRequest hook that lets through only requests bearing a live API key with the scope. */
    requireApiKey(scope: ApiKeyScope): onRequestHookHandler;
  }
  interface FastifyRequest {
    apiKeyId?: string;
  }
}

export const apiKeyAuthPlugin = fp(async (app) => {
  const apiKeys = new ApiKeys(app.deps.db);
  app.decorate('apiKeys', apiKeys);
  app.decorate('requireApiKey', (scope: ApiKeyScope): onRequestHookHandler => async (req, reply) => {
    let check;
    try {
      check = await apiKeys.check(req.headers.authorization, scope);
    } catch (err) {
      if (!isPostgresUnavailable(err)) throw err;
      req.log.warn({ err }, 'API key check failed: billing DB unavailable');
      return reply.code(503).header('retry-after', '5').send({
        code: 'INGEST_UNAVAILABLE',
        message: `postgres is unavailable: ${(err as Error).message}; nothing was kept, retry later`,
      });
    }
    if (!check.ok) return reply.code(check.status).send({ code: check.code, message: check.message });
    req.apiKeyId = check.id;
  });
});
