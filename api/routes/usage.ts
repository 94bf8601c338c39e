import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { stringify } from 'csv-stringify/sync';
import { DayRangeQuery, MAX_RANGE_DAYS, resolveDayRange } from '../day-range.js';
import { findOrganisation } from '../organisations.js';
import { orgTokenSecurity } from '../plugins/org-auth.js';
import { ErrorBody, OrgIdParams, Quantity } from '../schemas.js';

const UsageLine = Type.Object({ day: Type.String(), amountType: Type.String(), total: Quantity, eventCount: Type.Integer() });
const AmountTypeTotal = Type.Object({ amountType: Type.String(), total: Quantity, eventCount: Type.Integer() });
const UsageAnswer = Type.Object({
  orgId: Type.String(), from: Type.String(), to: Type.String(),
  usage: Type.Array(UsageLine, { description: 'One line per day and amount type that has usage, by day then amount type' }),
  totals: Type.Array(AmountTypeTotal, { description: 'The range summed per amount type' }),
});

export const CSV_COLUMNS = ['day', 'amount_type', 'total', 'event_count'];

/** Whether the Accept header prefers CSV to JSON (by q, then by order); absent or * / * means JSON. */
function prefersCsv(accept: string | undefined): boolean {
  if (!accept) return false;
  const ranked = accept.split(',').map((part, order) => {
    const [type = '', ...params] = part.trim().toLowerCase().split(';');
    const q = Number(params.map((p) => p.trim()).find((p) => p.startsWith('q='))?.slice(2) ?? 1);
    return { type: type.trim(), q: Number.isFinite(q) ? q : 0, order };
  }).filter((r) => r.q > 0 && (r.type === 'text/csv' || r.type === 'application/json'));
  ranked.sort((a, b) => b.q - a.q || a.order - b.order);
  return ranked[0]?.type === 'text/csv';
}

/** The customer-facing billing API: an organisation's usage by day and amount type, as JSON or CSV. */
export const usageRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { db } = app.deps;

  app.get('/v1/organisations/:orgId/usage', {
    schema: {
      summary: "An organisation's daily usage, with totals per amount type",
      description: `Aggregated usage (usage_daily) over at most ${MAX_RANGE_DAYS} days. ?format=csv or Accept: text/csv answers CSV with the columns ${CSV_COLUMNS.join(', ')}.`,
      tags: ['billing'],
      security: orgTokenSecurity,
      params: OrgIdParams,
      querystring: Type.Object({
        ...DayRangeQuery,
        format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('csv')], { description: 'Overrides the Accept header' })),
      }),
      response: {
        200: {
          description: 'The usage lines and totals (JSON), or the lines as CSV',
          content: {
            'application/json': { schema: UsageAnswer },
            'text/csv': { schema: Type.String({ description: `Header row ${CSV_COLUMNS.join(',')}, then one row per line` }) },
          },
        },
        400: ErrorBody, 401: ErrorBody, 404: ErrorBody,
      },
    },
  }, async (req, reply) => {
    // The 31 days to today unless asked otherwise, as before ranges were validated.
    const range = resolveDayRange(req.query, 31);
    if (!range.ok) return reply.code(400).send(range.error);
    const { from, to } = range;
    const org = await findOrganisation(db, req.params.orgId);
    if (!org) return reply.code(404).send({ code: 'ORG_NOT_FOUND', message: `no organisation ${req.params.orgId}` });
    const { rows } = await db.query<{ billing_day: string; amount_type: string; total: string; event_count: number }>(
      `SELECT billing_day, amount_type, total, event_count FROM usage_daily
       WHERE internal_instance_id = $1 AND billing_day BETWEEN $2 AND $3 ORDER BY billing_day, amount_type`,
      [org.internalInstanceId, from, to],
    );
    const usage = rows.map((r) => ({ day: r.billing_day, amountType: r.amount_type, total: r.total, eventCount: r.event_count }));

    if (req.query.format === 'csv' || (req.query.format === undefined && prefersCsv(req.headers.accept))) {
      const csv = stringify(usage.map((u) => [u.day, u.amountType, u.total, u.eventCount]), { header: true, columns: CSV_COLUMNS });
      return reply.type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="usage-${req.params.orgId}-${from}-${to}.csv"`)
        .send(csv);
    }
    // Summed as BigInt: a year of a large customer's samples passes 2^53.
    const totals = new Map<string, { total: bigint; eventCount: number }>();
    for (const u of usage) {
      const t = totals.get(u.amountType) ?? { total: 0n, eventCount: 0 };
      totals.set(u.amountType, { total: t.total + BigInt(u.total), eventCount: t.eventCount + u.eventCount });
    }
    return {
      orgId: req.params.orgId, from, to, usage,
      totals: [...totals].sort(([a], [b]) => (a < b ? -1 : 1)).map(([amountType, t]) => ({ amountType, total: t.total.toString(), eventCount: t.eventCount })),
    };
  });
};
