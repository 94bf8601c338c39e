import fp from 'fastify-plugin';
import type { onRequestHookHandler } from 'fastify';
import { isPostgresUnavailable } from '../../db/pool.js';
import { OrgTokens } from '../org-tokens.js';

declare module 'fastify' {
  interface FastifyInstance {
    orgTokens: OrgTokens;
    /**
     * An onRequest hook for /v1/organisations/:orgId/*: lets through only a live token of that
     * organisation. A token of another organisation gets the same 404 an unknown organisation
     * gets, so a token never tells which other organisations exist.
     */
    requireOrgToken: onRequestHookHandler;
  }
  interface FastifyRequest {
    orgTokenId?: string;
  }
}

/** The OpenAPI security requirement of every route behind requireOrgToken. */
export const orgTokenSecurity = [{ orgToken: [] as string[] }];

export const orgTokenSecurityScheme = {
  orgToken: {
    type: 'http' as const,
    scheme: 'bearer',
    description: 'An organisation token, tally_org_…, from POST /v1/signup or POST /admin/organisations/{orgId}/tokens; it reads and acts on that organisation only.',
  },
};

export const orgAuthPlugin = fp(async (app) => {
  const orgTokens = new OrgTokens(app.deps.db);
  app.decorate('orgTokens', orgTokens);
  app.decorate('requireOrgToken', (async (req, reply) => {
    let check;
    try {
      check = await orgTokens.check(req.headers.authorization);
    } catch (err) {
      if (!isPostgresUnavailable(err)) throw err;
      req.log.warn({ err }, 'organisation token check failed: billing DB unavailable');
      return reply.code(503).header('retry-after', '5').send({ code: 'BILLING_UNAVAILABLE', message: `postgres is unavailable: ${(err as Error).message}; retry later` });
    }
    if (!check.ok) return reply.code(401).header('www-authenticate', 'Bearer realm="tally"').send({ code: check.code, message: check.message });
    const orgId = (req.params as { orgId?: string }).orgId;
    if (orgId !== check.orgId) return reply.code(404).send({ code: 'ORG_NOT_FOUND', message: `no organisation ${orgId}` });
    req.orgTokenId = check.tokenId;
  }) satisfies onRequestHookHandler);
});
