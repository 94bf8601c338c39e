import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { rawEventStoreFrom } from '../../activities/clients.js';
import { isBillingDay, type BillingDay } from '../../core/billing-day.js';
import { findOrganisation } from '../organisations.js';
import { orgTokenSecurity } from '../plugins/org-auth.js';
import { BillingDayParam, ErrorBody, OrgIdParams, Quantity } from '../schemas.js';

const RawEvent = Type.Object({
  insertId: Type.String({ description: '<event key>:<amount type>, the row\'s identity in the raw event store' }),
  eventKey: Type.String({ description: 'The unique key the producer sent' }),
  amountValue: Quantity,
  occurredAt: Type.String(),
  receivedAt: Type.String(),
  batchId: Type.String(),
  metadata: Type.Record(Type.String(), Type.String()),
});

/**
 * The page token is opaque to clients; inside it is the line it pages and the last insert id
 * answered, so a token of one line is refused on another rather than silently misread.
 */
interface PageToken { day: string; amountType: string; after: string }

function encodePageToken(token: PageToken): string {
  return Buffer.from(JSON.stringify([token.day, token.amountType, token.after])).toString('base64url');
}

function decodePageToken(text: string): PageToken | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (!Array.isArray(value) || value.length !== 3 || !value.every((v) => typeof v === 'string')) return undefined;
    const [day, amountType, after] = value as [string, string, string];
    return { day, amountType, after };
  } catch {
    return undefined;
  }
}

/** Lineage: the raw events in BigQuery behind one line of an organisation's daily usage. */
export const usageLineageRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db } = app.deps;
  const rawEvents = rawEventStoreFrom(config);

  app.get('/v1/organisations/:orgId/usage/:day/:amountType/events', {
    schema: {
      summary: 'The raw events behind one daily usage line',
      description: 'Each event once, as the aggregation counts it (a copy BigQuery kept twice is shown once), ordered by insert id. '
        + 'Paging through every page returns eventCount events whose amounts sum to total.',
      tags: ['billing'],
      security: orgTokenSecurity,
      params: Type.Object({ ...OrgIdParams.properties, day: BillingDayParam, amountType: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9-]+$' }) }),
      querystring: Type.Object({
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        pageToken: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'nextPageToken of the previous page' })),
      }),
      response: {
        200: Type.Object({
          orgId: Type.String(),
          day: Type.String(),
          amountType: Type.String(),
          total: Quantity,
          eventCount: Type.Integer({ description: 'Events in the line (usage_daily), across all pages' }),
          events: Type.Array(RawEvent),
          nextPageToken: Type.Union([Type.String(), Type.Null()], { description: 'null on the last page' }),
        }),
        400: ErrorBody, 401: ErrorBody, 404: ErrorBody,
      },
    },
  }, async (req, reply) => {
    const { orgId, day, amountType } = req.params;
    if (!isBillingDay(day)) return reply.code(400).send({ code: 'INVALID_DAY', field: 'day', message: `day is not a calendar day: ${day}` });
    let after: string | null = null;
    if (req.query.pageToken !== undefined) {
      const token = decodePageToken(req.query.pageToken);
      if (!token || token.day !== day || token.amountType !== amountType) {
        return reply.code(400).send({ code: 'INVALID_PAGE_TOKEN', field: 'pageToken', message: `pageToken is not a token of ${day} ${amountType}: pass nextPageToken unchanged, with the same day and amount type` });
      }
      after = token.after;
    }
    const org = await findOrganisation(db, orgId);
    if (!org) return reply.code(404).send({ code: 'ORG_NOT_FOUND', message: `no organisation ${orgId}` });
    const line = (await db.query<{ total: string; event_count: number }>(
      'SELECT total, event_count FROM usage_daily WHERE internal_instance_id = $1 AND billing_day = $2 AND amount_type = $3',
      [org.internalInstanceId, day, amountType],
    )).rows[0];
    if (!line) {
      return reply.code(404).send({
        code: 'USAGE_LINE_NOT_FOUND',
        message: `${orgId} has no aggregated ${amountType} usage on ${day}; today's usage before aggregation is at /v1/organisations/${orgId}/usage/live`,
      });
    }
    // One row more than asked tells whether another page follows.
    const rows = await rawEvents.lineEvents({ day: day as BillingDay, internalInstanceId: org.internalInstanceId, amountType }, { after, limit: req.query.limit + 1 });
    const events = rows.slice(0, req.query.limit);
    const last = events.at(-1);
    return {
      orgId, day, amountType, total: line.total, eventCount: line.event_count, events,
      nextPageToken: rows.length > req.query.limit && last ? encodePageToken({ day, amountType, after: last.insertId }) : null,
    };
  });
};
