import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { API_KEY_SCOPES } from '../api-keys.js';
import { ErrorBody } from '../schemas.js';

const Scope = Type.Union(API_KEY_SCOPES.map((s) => Type.Literal(s)));

/** Operators issue producer API keys (the secret is shown once), list and revoke them. */
export const apiKeyRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/admin/api-keys', {
    schema: {
      summary: 'Issue a producer API key',
      description: 'The key is in this answer only: Tally keeps a hash of it.',
      tags: ['admin'],
      body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 128 }), scopes: Type.Array(Scope, { minItems: 1, uniqueItems: true, default: ['ingest'] }) }),
      response: { 201: Type.Object({ id: Type.String(), name: Type.String(), scopes: Type.Array(Type.String()), key: Type.String() }) },
    },
  }, async (req, reply) => {
    const { id, key } = await app.apiKeys.issue(req.body.name, req.body.scopes);
    return reply.code(201).send({ id, name: req.body.name, scopes: req.body.scopes, key });
  });

  app.get('/admin/api-keys', {
    schema: {
      summary: 'List API keys (without secrets)',
      tags: ['admin'],
      response: {
        200: Type.Object({
          keys: Type.Array(Type.Object({
            id: Type.String(), name: Type.String(), scopes: Type.Array(Type.String()),
            createdAt: Type.String(), revokedAt: Type.Union([Type.String(), Type.Null()]),
          })),
        }),
      },
    },
  }, async () => ({ keys: await app.apiKeys.list() }));

  app.delete('/admin/api-keys/:id', {
    schema: {
      summary: 'Revoke an API key',
      description: 'Requests bearing it are refused within a few seconds (the check is cached for 5 s).',
      tags: ['admin'],
      params: Type.Object({ id: Type.String() }),
      response: { 204: Type.Null(), 404: ErrorBody },
    },
  }, async (req, reply) => {
    if (!(await app.apiKeys.revoke(req.params.id))) return reply.code(404).send({ code: 'API_KEY_NOT_FOUND', message: `no API key ${req.params.id}` });
    return reply.code(204).send(null);
  });
};
