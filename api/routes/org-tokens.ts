import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { OrganisationNotFound } from '../org-tokens.js';
import { ErrorBody, OrgIdParams } from '../schemas.js';

export const OrgTokenInfo = Type.Object({
  id: Type.String(),
  orgId: Type.String(),
  name: Type.String(),
  createdAt: Type.String(),
  lastUsedAt: Type.Union([Type.String(), Type.Null()], { description: 'Updated at most once a minute' }),
  revokedAt: Type.Union([Type.String(), Type.Null()]),
});
export const IssuedOrgToken = Type.Object({ ...OrgTokenInfo.properties, token: Type.String({ description: 'tally_org_…: shown in this answer only' }) });

/** Operators issue an organisation's billing API tokens (the secret is shown once), list and revoke them. */
export const orgTokenRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const notFound = (orgId: string) => ({ code: 'ORG_NOT_FOUND', message: `no organisation ${orgId}` });

  app.post('/admin/organisations/:orgId/tokens', {
    schema: {
      summary: "Issue a token for an organisation's billing API",
      description: 'The token reads and acts on this organisation only (/v1/organisations/{orgId}/…). It is in this answer only: Tally keeps a hash of it.',
      tags: ['admin'], params: OrgIdParams,
      body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 128, description: 'What it is for, e.g. "billing dashboard"' }) }),
      response: { 201: IssuedOrgToken, 404: ErrorBody },
    },
  }, async (req, reply) => {
    try {
      return reply.code(201).send(await app.orgTokens.issue(req.params.orgId, req.body.name));
    } catch (err) {
      if (err instanceof OrganisationNotFound) return reply.code(404).send(notFound(req.params.orgId));
      throw err;
    }
  });

  app.get('/admin/organisations/:orgId/tokens', {
    schema: {
      summary: "An organisation's billing API tokens (without secrets), revoked ones included",
      tags: ['admin'], params: OrgIdParams,
      response: { 200: Type.Object({ tokens: Type.Array(OrgTokenInfo) }), 404: ErrorBody },
    },
  }, async (req, reply) => {
    const tokens = await app.orgTokens.list(req.params.orgId);
    if (tokens.length === 0) {
      const known = await app.deps.db.query('SELECT 1 FROM organisations WHERE id = $1', [req.params.orgId]);
      if (known.rowCount === 0) return reply.code(404).send(notFound(req.params.orgId));
    }
    return { tokens };
  });

  app.delete('/admin/organisations/:orgId/tokens/:tokenId', {
    schema: {
      summary: "Revoke an organisation's token",
      description: 'Requests bearing it are refused at once by this API process and within 5 s by the others (their check is cached).',
      tags: ['admin'],
      params: Type.Object({ ...OrgIdParams.properties, tokenId: Type.String({ minLength: 1, maxLength: 64 }) }),
      response: { 200: OrgTokenInfo, 404: ErrorBody },
    },
  }, async (req, reply) => {
    const revoked = await app.orgTokens.revoke(req.params.orgId, req.params.tokenId);
    if (!revoked) return reply.code(404).send({ code: 'ORG_TOKEN_NOT_FOUND', message: `organisation ${req.params.orgId} has no token ${req.params.tokenId}` });
    return revoked;
  });
};
