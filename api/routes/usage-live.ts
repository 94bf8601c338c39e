import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { billingDayOf, isBillingDay } from '../../core/billing-day.js';
import { findOrganisation } from '../organisations.js';
import { orgTokenSecurity } from '../plugins/org-auth.js';
import { BillingDayParam, ErrorBody, OrgIdParams, Quantity } from '../schemas.js';

const LiveTotal = Type.Object({
  amountType: Type.String(),
  total: Quantity,
  eventCount: Type.Integer(),
  updatedAt: Type.String({ description: 'When ingest last added to this total' }),
});

/**
 * Live usage: the day's totals as ingest wrote them (usage_live, fed by the ingest drainer),
 * seconds old, before the aggregation recomputes the day from BigQuery into usage_daily.
 */
export const liveUsageRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { db } = app.deps;

  app.get('/v1/organisations/:orgId/usage/live', {
    schema: {
      summary: "An organisation's usage of one day so far, seconds old",
      description: 'Totals per amount type of the events accepted and written for the day. The aggregated figures (GET …/usage) replace them once the day is aggregated; they agree unless an event was rejected by BigQuery.',
      tags: ['billing'],
      security: orgTokenSecurity,
      params: OrgIdParams,
      querystring: Type.Object({ day: Type.Optional({ ...BillingDayParam, description: 'The UTC day (default: today)' }) }),
      response: {
        200: Type.Object({
          orgId: Type.String(),
          day: Type.String(),
          totals: Type.Array(LiveTotal),
          updatedAt: Type.Union([Type.String(), Type.Null()], { description: 'The latest update of any total; null when the day has no usage yet' }),
        }),
        400: ErrorBody, 401: ErrorBody, 404: ErrorBody,
      },
    },
  }, async (req, reply) => {
    const day = req.query.day ?? billingDayOf(Date.now());
    if (!isBillingDay(day)) return reply.code(400).send({ code: 'INVALID_DAY', field: 'day', message: `day is not a calendar day: ${day}` });
    const org = await findOrganisation(db, req.params.orgId);
    if (!org) return reply.code(404).send({ code: 'ORG_NOT_FOUND', message: `no organisation ${req.params.orgId}` });
    const { rows } = await db.query<{ amount_type: string; total: string; event_count: number; updated_at: Date }>(
      `SELECT amount_type, total, event_count, updated_at FROM usage_live
       WHERE internal_instance_id = $1 AND billing_day = $2 ORDER BY amount_type`,
      [org.internalInstanceId, day],
    );
    const totals = rows.map((r) => ({ amountType: r.amount_type, total: r.total, eventCount: r.event_count, updatedAt: r.updated_at.toISOString() }));
    const updatedAt = totals.reduce<string | null>((latest, t) => (latest === null || t.updatedAt > latest ? t.updatedAt : latest), null);
    return { orgId: req.params.orgId, day, totals, updatedAt };
  });
};
