import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { randomBytes } from 'node:crypto';
import { orgTokenSecurity } from '../plugins/org-auth.js';
import { ErrorBody, OrgIdParams, Quantity } from '../schemas.js';

const Threshold = Type.Object({
  id: Type.String(),
  amountType: Type.String(),
  quantity: Quantity,
  webhookUrl: Type.String(),
  createdAt: Type.String(),
  crossings: Type.Array(Type.Object({
    periodStart: Type.String({ description: 'The billing period (calendar month, UTC) it was crossed in' }),
    periodTotal: Quantity,
    crossedAt: Type.String(),
    deliveredAt: Type.Union([Type.String(), Type.Null()]),
    attempts: Type.Integer(),
    lastError: Type.Union([Type.String(), Type.Null()]),
  })),
});

interface ThresholdRow {
  id: string; amount_type: string; quantity: string; webhook_url: string; created_at: Date;
  crossings: { period_start: string; period_total: string; crossed_at: string; delivered_at: string | null; attempts: number; last_error: string | null }[];
}

/**
 * Usage thresholds: per amount type and billing period (calendar month), a quantity whose
 * crossing sends one signed webhook (docs/aggregation.md). Checked after each aggregation.
 */
export const thresholdRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db } = app.deps;
  const view = (r: ThresholdRow) => ({
    id: r.id, amountType: r.amount_type, quantity: r.quantity, webhookUrl: r.webhook_url, createdAt: r.created_at.toISOString(),
    crossings: r.crossings.map((c) => ({
      periodStart: c.period_start, periodTotal: String(c.period_total), crossedAt: new Date(c.crossed_at).toISOString(),
      deliveredAt: c.delivered_at ? new Date(c.delivered_at).toISOString() : null, attempts: c.attempts, lastError: c.last_error,
    })),
  });
  const select = `
    SELECT t.id, t.amount_type, t.quantity, t.webhook_url, t.created_at,
           coalesce((SELECT json_agg(json_build_object('period_start', to_char(c.period_start, 'YYYY-MM-DD'), 'period_total', c.period_total::text,
                     'crossed_at', c.crossed_at, 'delivered_at', c.delivered_at, 'attempts', c.attempts, 'last_error', c.last_error) ORDER BY c.period_start)
                     FROM usage_threshold_crossings c WHERE c.threshold_id = t.id), '[]') AS crossings
    FROM usage_thresholds t WHERE t.org_id = $1 AND t.deleted_at IS NULL`;

  app.post('/v1/organisations/:orgId/thresholds', {
    schema: {
      summary: 'Set a usage threshold: one signed webhook when the billing period crosses it',
      description: 'The answer carries the HMAC-SHA256 secret the webhooks are signed with (header x-tally-signature: t=<unix seconds>,v1=<hex of HMAC("<t>.<body>")>); it is shown once.',
      tags: ['billing'],
      security: orgTokenSecurity,
      params: OrgIdParams,
      body: Type.Object({
        amountType: Type.String({ minLength: 1 }),
        quantity: Quantity,
        webhookUrl: Type.String({ pattern: '^https?://', maxLength: 2048 }),
      }, { additionalProperties: false }),
      response: { 201: Type.Composite([Threshold, Type.Object({ secret: Type.String() })]), 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
    },
  }, async (req, reply) => {
    const { amountType, quantity, webhookUrl } = req.body;
    if (!config.amountTypes.has(amountType)) {
      return reply.code(400).send({ code: 'UNKNOWN_AMOUNT_TYPE', field: 'amountType', message: `unknown amount type ${amountType}; known: ${[...config.amountTypes.keys()].join(', ')}` });
    }
    if (BigInt(quantity) === 0n) return reply.code(400).send({ code: 'INVALID_QUANTITY', field: 'quantity', message: 'a threshold must be above zero' });
    const id = `thr_${randomBytes(6).toString('hex')}`;
    const secret = `whsec_${randomBytes(24).toString('base64url')}`;
    await db.query(
      'INSERT INTO usage_thresholds (id, org_id, amount_type, quantity, webhook_url, secret) VALUES ($1, $2, $3, $4, $5, $6)',
      [id, req.params.orgId, amountType, quantity, webhookUrl, secret],
    );
    const { rows } = await db.query<ThresholdRow>(`${select} AND t.id = $2`, [req.params.orgId, id]);
    return reply.code(201).send({ ...view(rows[0]!), secret });
  });

  app.get('/v1/organisations/:orgId/thresholds', {
    schema: {
      summary: "The organisation's usage thresholds and each crossing with its delivery",
      tags: ['billing'],
      security: orgTokenSecurity,
      params: OrgIdParams,
      response: { 200: Type.Object({ thresholds: Type.Array(Threshold) }), 401: ErrorBody, 404: ErrorBody },
    },
  }, async (req) => {
    const { rows } = await db.query<ThresholdRow>(`${select} ORDER BY t.created_at`, [req.params.orgId]);
    return { thresholds: rows.map(view) };
  });

  app.delete('/v1/organisations/:orgId/thresholds/:thresholdId', {
    schema: {
      summary: 'Remove a usage threshold (a webhook still pending is not sent)',
      tags: ['billing'],
      security: orgTokenSecurity,
      params: Type.Composite([OrgIdParams, Type.Object({ thresholdId: Type.String({ pattern: '^thr_[0-9a-f]{12}$' }) })]),
      response: { 204: Type.Null(), 401: ErrorBody, 404: ErrorBody },
    },
  }, async (req, reply) => {
    const res = await db.query('UPDATE usage_thresholds SET deleted_at = now() WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL', [req.params.thresholdId, req.params.orgId]);
    if (res.rowCount === 0) return reply.code(404).send({ code: 'THRESHOLD_NOT_FOUND', message: `no threshold ${req.params.thresholdId}` });
    return reply.code(204).send(null);
  });
};
