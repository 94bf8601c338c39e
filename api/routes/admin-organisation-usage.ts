import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ZuoraError } from '../../activities/zuora-client.js';
import type { FastifyRequest } from 'fastify';
import { findOrganisationRecord, organisationNotFound, type OrganisationRecord } from '../admin-organisation.js';
import { DayRangeQuery, resolveDayRange } from '../day-range.js';
import { ErrorBody, OrgIdParams, Quantity } from '../schemas.js';

const NullableQuantity = Type.Union([Quantity, Type.Null()]);
const Stamp = Type.String({ description: 'ISO 8601 instant' });

const UsageLine = Type.Object({ day: Type.String(), amountType: Type.String(), total: Quantity, eventCount: Type.Integer() });
const LiveLine = Type.Object({ ...UsageLine.properties, updatedAt: Stamp });

const UploadHistoryEntry = Type.Object({
  kind: Type.String({ description: 'initial, correction or resend' }),
  quantity: Quantity,
  previousQuantity: NullableQuantity,
  importId: Type.String(),
  recordedAt: Stamp,
});
const Upload = Type.Object({
  uniqueKey: Type.String({ description: 'The UniqueKey Zuora dedupes the usage record on' }),
  day: Type.String(),
  amountType: Type.String(),
  unitOfMeasure: Type.String(),
  quantity: Quantity,
  status: Type.String({ description: 'submitted, completed or failed' }),
  statusMessage: Type.Union([Type.String(), Type.Null()]),
  importId: Type.String(),
  importStatus: Type.Union([Type.String(), Type.Null()], { description: "Zuora's verdict on the import that carried the latest quantity" }),
  submittedAt: Stamp,
  completedAt: Type.Union([Stamp, Type.Null()]),
  history: Type.Array(UploadHistoryEntry),
});

const Restatement = Type.Object({
  day: Type.String(),
  amountType: Type.String(),
  previousTotal: NullableQuantity,
  newTotal: Quantity,
  previousEventCount: Type.Union([Type.Integer(), Type.Null()]),
  newEventCount: Type.Integer(),
  reason: Type.String({ description: 'late-usage, backfill or recompute' }),
  uploadedBefore: Type.Boolean({ description: 'Zuora already held the day: the next upload sends a correction' }),
  workflowId: Type.Union([Type.String(), Type.Null()]),
  restatedAt: Stamp,
});

const Invoice = Type.Object({
  id: Type.String(), invoiceNumber: Type.String(), invoiceDate: Type.String(), dueDate: Type.String(),
  amount: Type.String({ description: 'Decimal string, as Zuora states it' }), balance: Type.String(), status: Type.String(),
});

/** One organisation's usage, uploads, restatements and invoices, for the admin UI's organisation page. */
export const adminOrganisationUsageRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { db, zuora } = app.deps;
  const params = OrgIdParams;
  const querystring = Type.Object(DayRangeQuery);
  const errors = { 400: ErrorBody, 404: ErrorBody };

  // Every route here is about one organisation: found once, before the handler, or 404.
  const organisationOf = new WeakMap<FastifyRequest, OrganisationRecord>();
  app.addHook('preHandler', async (req, reply) => {
    const { orgId } = req.params as { orgId: string };
    const org = await findOrganisationRecord(db, orgId);
    if (!org) return reply.code(404).send(organisationNotFound(orgId));
    organisationOf.set(req, org);
  });

  app.get('/admin/organisations/:orgId/usage', {
    schema: {
      summary: "An organisation's usage by day and amount type: aggregated, and live",
      description: '`daily` is usage_daily (recomputed from BigQuery by aggregate-<day>); `live` is what ingest counted so far (usage_live), seconds old. Default range: the last 30 days.',
      tags: ['admin'], params, querystring,
      response: { 200: Type.Object({ orgId: Type.String(), from: Type.String(), to: Type.String(), daily: Type.Array(UsageLine), live: Type.Array(LiveLine) }), ...errors },
    },
  }, async (req, reply) => {
    const days = resolveDayRange(req.query, 30);
    if (!days.ok) return reply.code(400).send(days.error);
    const org = organisationOf.get(req)!;
    const args = [org.internalInstanceId, days.from, days.to];
    const [daily, live] = await Promise.all([
      db.query<{ billing_day: string; amount_type: string; total: string; event_count: number }>(
        `SELECT billing_day, amount_type, total, event_count FROM usage_daily
         WHERE internal_instance_id = $1 AND billing_day BETWEEN $2 AND $3 ORDER BY billing_day, amount_type`, args),
      db.query<{ billing_day: string; amount_type: string; total: string; event_count: number; updated_at: Date }>(
        `SELECT billing_day, amount_type, total, event_count, updated_at FROM usage_live
         WHERE internal_instance_id = $1 AND billing_day BETWEEN $2 AND $3 ORDER BY billing_day, amount_type`, args),
    ]);
    return {
      orgId: org.id, from: days.from, to: days.to,
      daily: daily.rows.map((r) => ({ day: r.billing_day, amountType: r.amount_type, total: r.total, eventCount: r.event_count })),
      live: live.rows.map((r) => ({ day: r.billing_day, amountType: r.amount_type, total: r.total, eventCount: r.event_count, updatedAt: r.updated_at.toISOString() })),
    };
  });

  app.get('/admin/organisations/:orgId/uploads', {
    schema: {
      summary: "What was sent to Zuora for an organisation: the upload ledger, each line's history and its import",
      description: 'Default range: the last 30 days.',
      tags: ['admin'], params, querystring,
      response: { 200: Type.Object({ orgId: Type.String(), from: Type.String(), to: Type.String(), uploads: Type.Array(Upload) }), ...errors },
    },
  }, async (req, reply) => {
    const days = resolveDayRange(req.query, 30);
    if (!days.ok) return reply.code(400).send(days.error);
    const org = organisationOf.get(req)!;
    const ledger = await db.query<{
      unique_key: string; billing_day: string; amount_type: string; unit_of_measure: string; quantity: string; status: string; status_message: string | null;
      import_id: string; import_status: string | null; submitted_at: Date; completed_at: Date | null;
    }>(
      `SELECT l.unique_key, l.billing_day, l.amount_type, l.unit_of_measure, l.quantity, l.status, l.status_message,
              l.import_id, i.status AS import_status, l.submitted_at, l.completed_at
       FROM upload_ledger l LEFT JOIN upload_ledger_imports i ON i.import_id = l.import_id
       WHERE l.org_id = $1 AND l.billing_day BETWEEN $2 AND $3 ORDER BY l.billing_day DESC, l.amount_type`,
      [org.id, days.from, days.to],
    );
    const history = await db.query<{ unique_key: string; kind: string; quantity: string; previous_quantity: string | null; import_id: string; recorded_at: Date }>(
      'SELECT unique_key, kind, quantity, previous_quantity, import_id, recorded_at FROM upload_history WHERE unique_key = ANY($1) ORDER BY id',
      [ledger.rows.map((r) => r.unique_key)],
    );
    const historyOf = new Map<string, typeof history.rows>();
    for (const h of history.rows) historyOf.set(h.unique_key, [...(historyOf.get(h.unique_key) ?? []), h]);
    return {
      orgId: org.id, from: days.from, to: days.to,
      uploads: ledger.rows.map((r) => ({
        uniqueKey: r.unique_key, day: r.billing_day, amountType: r.amount_type, unitOfMeasure: r.unit_of_measure, quantity: r.quantity,
        status: r.status, statusMessage: r.status_message, importId: r.import_id, importStatus: r.import_status,
        submittedAt: r.submitted_at.toISOString(), completedAt: r.completed_at?.toISOString() ?? null,
        history: (historyOf.get(r.unique_key) ?? []).map((h) => ({
          kind: h.kind, quantity: h.quantity, previousQuantity: h.previous_quantity, importId: h.import_id, recordedAt: h.recorded_at.toISOString(),
        })),
      })),
    };
  });

  app.get('/admin/organisations/:orgId/restatements', {
    schema: {
      summary: "Changes to an organisation's usage of closed days, with their reasons",
      description: 'From usage_restatements, by the day restated; default range: the last 90 days.',
      tags: ['admin'], params, querystring,
      response: { 200: Type.Object({ orgId: Type.String(), from: Type.String(), to: Type.String(), restatements: Type.Array(Restatement) }), ...errors },
    },
  }, async (req, reply) => {
    const days = resolveDayRange(req.query, 90);
    if (!days.ok) return reply.code(400).send(days.error);
    const org = organisationOf.get(req)!;
    const { rows } = await db.query<{
      billing_day: string; amount_type: string; previous_total: string | null; new_total: string; previous_event_count: number | null; new_event_count: number;
      reason: string; uploaded_before: boolean; workflow_id: string | null; restated_at: Date;
    }>(
      `SELECT billing_day, amount_type, previous_total, new_total, previous_event_count, new_event_count, reason, uploaded_before, workflow_id, restated_at
       FROM usage_restatements WHERE internal_instance_id = $1 AND billing_day BETWEEN $2 AND $3 ORDER BY restated_at DESC, id DESC`,
      [org.internalInstanceId, days.from, days.to],
    );
    return {
      orgId: org.id, from: days.from, to: days.to,
      restatements: rows.map((r) => ({
        day: r.billing_day, amountType: r.amount_type, previousTotal: r.previous_total, newTotal: r.new_total,
        previousEventCount: r.previous_event_count, newEventCount: r.new_event_count, reason: r.reason,
        uploadedBefore: r.uploaded_before, workflowId: r.workflow_id, restatedAt: r.restated_at.toISOString(),
      })),
    };
  });

  app.get('/admin/organisations/:orgId/invoices', {
    schema: {
      summary: "An organisation's invoices, as Zuora lists them",
      description: "Read from Zuora on each request; 502 ZUORA_ERROR when Zuora does not answer. An organisation without a Zuora account has none.",
      tags: ['admin'], params,
      response: {
        200: Type.Object({ orgId: Type.String(), zuoraAccountNumber: Type.Union([Type.String(), Type.Null()]), invoices: Type.Array(Invoice) }),
        404: ErrorBody, 502: ErrorBody,
      },
    },
  }, async (req, reply) => {
    const org = organisationOf.get(req)!;
    if (!org.zuoraAccountNumber) return { orgId: org.id, zuoraAccountNumber: null, invoices: [] };
    try {
      const invoices = await zuora.accountInvoices(org.zuoraAccountNumber);
      return {
        orgId: org.id, zuoraAccountNumber: org.zuoraAccountNumber,
        // Zuora's amounts are decimals: passed on as the text Zuora sent, never re-computed.
        invoices: invoices.map((i) => ({
          id: i.id, invoiceNumber: i.invoiceNumber, invoiceDate: i.invoiceDate, dueDate: i.dueDate,
          amount: String(i.amount), balance: String(i.balance), status: i.status,
        })),
      };
    } catch (err) {
      if (!(err instanceof ZuoraError)) throw err;
      return reply.code(502).send({ code: 'ZUORA_ERROR', message: `Zuora did not list the invoices of ${org.zuoraAccountNumber}: ${err.message}` });
    }
  });
};
