import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { addDays, billingDayOf, isBillingDay, type BillingDay } from '../../core/billing-day.js';
import { BillingDayParam, ErrorBody } from '../schemas.js';

const UsageLine = Type.Object({
  day: Type.String(),
  amountType: Type.String(),
  total: Type.String({ description: 'Decimal integer string: quantities never pass through floating point' }),
  eventCount: Type.Integer(),
});

/** The customer-facing billing API: an organisation's usage by day and amount type. */
export const usageRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { db } = app.deps;

  app.get('/v1/organisations/:orgId/usage', {
    schema: {
      summary: "An organisation's daily usage",
      tags: ['billing'],
      params: Type.Object({ orgId: Type.String({ minLength: 1 }) }),
      querystring: Type.Object({
        from: Type.Optional({ ...BillingDayParam, description: 'First day (default: 30 days ago)' }),
        to: Type.Optional({ ...BillingDayParam, description: 'Last day, inclusive (default: today)' }),
      }),
      response: {
        200: Type.Object({ orgId: Type.String(), from: Type.String(), to: Type.String(), usage: Type.Array(UsageLine) }),
        400: ErrorBody,
        404: ErrorBody,
      },
    },
  }, async (req, reply) => {
    const to = req.query.to ?? billingDayOf(Date.now());
    const from = req.query.from ?? addDays(to as BillingDay, -30);
    for (const [field, value] of [['from', from], ['to', to]] as const) {
      if (!isBillingDay(value)) return reply.code(400).send({ code: 'INVALID_DAY', field, message: `${field} is not a calendar day: ${value}` });
    }
    if (from > to) return reply.code(400).send({ code: 'INVALID_RANGE', field: 'from', message: `from (${from}) is after to (${to})` });
    const org = await db.query<{ internal_instance_id: string }>('SELECT internal_instance_id FROM organisations WHERE id = $1', [req.params.orgId]);
    const instanceId = org.rows[0]?.internal_instance_id;
    if (instanceId === undefined) return reply.code(404).send({ code: 'ORG_NOT_FOUND', message: `no organisation ${req.params.orgId}` });
    const { rows } = await db.query<{ billing_day: string; amount_type: string; total: string; event_count: number }>(
      `SELECT billing_day, amount_type, total, event_count FROM usage_daily
       WHERE internal_instance_id = $1 AND billing_day BETWEEN $2 AND $3 ORDER BY billing_day, amount_type`,
      [instanceId, from, to],
    );
    return {
      orgId: req.params.orgId,
      from,
      to,
      usage: rows.map((r) => ({ day: r.billing_day, amountType: r.amount_type, total: r.total, eventCount: r.event_count })),
    };
  });
};
