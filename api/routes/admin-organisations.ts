import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { workflowUrl } from '../../core/temporal-links.js';
import { trialWorkflowId } from '../../workflows/trial.js';
import { OrganisationStatus, TrialSummary, findOrganisationRecord, organisationNotFound } from '../admin-organisation.js';
import { ErrorBody, OrgIdParams } from '../schemas.js';
import { readTrial } from '../trial-workflow.js';

const OrganisationRow = Type.Object({
  id: Type.String(),
  name: Type.String(),
  internalInstanceId: Type.String(),
  zuoraAccountNumber: Type.Union([Type.String(), Type.Null()]),
  status: OrganisationStatus,
  trialEndsAt: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
});

const SentNotice = Type.Object({
  kind: Type.String({ description: 'reminder-7d, expired, enforced, lifted, ...' }),
  trialEndsAt: Type.String({ description: 'The trial end the notice was about' }),
  emailStatus: Type.String({ description: 'pending, sent, or none (no address)' }),
  webhookStatus: Type.String({ description: 'pending, sent, or none (no webhook configured)' }),
  webhookAttempts: Type.Integer(),
  lastError: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  sentAt: Type.Union([Type.String(), Type.Null()]),
});

const PaymentMethod = Type.Object({
  id: Type.String(), type: Type.String(), last4: Type.Union([Type.String(), Type.Null()]), addedBy: Type.String(), addedAt: Type.String(),
});

/** Operators find organisations and see one whole: its status, its trial as the workflow tells it, what was sent. */
export const adminOrganisationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db, temporal } = app.deps;

  app.get('/admin/organisations', {
    schema: {
      summary: 'Find organisations',
      description: 'Searches id, name and internal instance id (case-insensitive, substring); the trial state is the one the trial workflow last wrote to Postgres.',
      tags: ['admin'],
      querystring: Type.Object({
        search: Type.Optional(Type.String({ maxLength: 256 })),
        status: Type.Optional(OrganisationStatus),
        limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
        offset: Type.Integer({ minimum: 0, default: 0 }),
      }),
      response: {
        200: Type.Object({ organisations: Type.Array(OrganisationRow), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() }),
        400: ErrorBody,
      },
    },
  }, async (req) => {
    const { search, status, limit, offset } = req.query;
    // ILIKE's wildcards in the operator's text are literal characters, not patterns.
    const pattern = search ? `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : null;
    const where = `($1::text IS NULL OR id ILIKE $1 OR name ILIKE $1 OR internal_instance_id ILIKE $1)
                   AND ($2::text IS NULL OR status = $2)`;
    const [page, count] = await Promise.all([
      db.query<{ id: string; name: string; internal_instance_id: string; zuora_account_number: string | null; status: OrganisationStatus; trial_ends_at: Date | null; created_at: Date }>(
        `SELECT id, name, internal_instance_id, zuora_account_number, status, trial_ends_at, created_at
         FROM organisations WHERE ${where} ORDER BY id LIMIT $3 OFFSET $4`,
        [pattern, status ?? null, limit, offset],
      ),
      db.query<{ total: number }>(`SELECT count(*)::int AS total FROM organisations WHERE ${where}`, [pattern, status ?? null]),
    ]);
    return {
      organisations: page.rows.map((r) => ({
        id: r.id, name: r.name, internalInstanceId: r.internal_instance_id, zuoraAccountNumber: r.zuora_account_number,
        status: r.status, trialEndsAt: r.trial_ends_at?.toISOString() ?? null, createdAt: r.created_at.toISOString(),
      })),
      total: count.rows[0]!.total,
      limit,
      offset,
    };
  });

  app.get('/admin/organisations/:orgId', {
    schema: {
      summary: 'One organisation: status, trial, notices sent, payment methods',
      description: "`trial` is the trial workflow's own state (its query); when the workflow cannot answer, `trialError` says why and the rest still answers.",
      tags: ['admin'],
      params: OrgIdParams,
      response: {
        200: Type.Object({
          organisation: Type.Object({
            ...OrganisationRow.properties,
            trialStartedAt: Type.Union([Type.String(), Type.Null()]),
            statusChangedAt: Type.Union([Type.String(), Type.Null()]),
          }),
          trial: Type.Union([TrialSummary, Type.Null()]),
          trialError: Type.Union([ErrorBody, Type.Null()]),
          notifications: Type.Array(SentNotice),
          paymentMethods: Type.Array(PaymentMethod),
        }),
        404: ErrorBody,
      },
    },
  }, async (req, reply) => {
    const { orgId } = req.params;
    const organisation = await findOrganisationRecord(db, orgId);
    if (!organisation) return reply.code(404).send(organisationNotFound(orgId));
    const [trial, notices, methods] = await Promise.all([
      // A trial workflow with no worker polling cannot answer its query: say so, and show the rest.
      readTrial(temporal, orgId).catch((err: Error) => ({ ok: false as const, error: { code: 'TRIAL_UNAVAILABLE', message: `the trial workflow did not answer: ${err.message}` } })),
      db.query<{ kind: string; trial_ends_at: Date; email_status: string; webhook_status: string; webhook_attempts: number; last_error: string | null; created_at: Date; sent_at: Date | null }>(
        `SELECT kind, trial_ends_at, email_status, webhook_status, webhook_attempts, last_error, created_at, sent_at
         FROM trial_notifications WHERE org_id = $1 ORDER BY created_at`, [orgId],
      ),
      db.query<{ id: string; type: string; last4: string | null; added_by: string; added_at: Date }>(
        'SELECT id, type, last4, added_by, added_at FROM payment_methods WHERE org_id = $1 ORDER BY added_at', [orgId],
      ),
    ]);
    const workflowId = trialWorkflowId(orgId);
    return {
      organisation,
      trial: trial.ok
        ? {
          workflowId,
          temporalUrl: workflowUrl(config.TEMPORAL_UI_URL, config.TEMPORAL_NAMESPACE, workflowId),
          status: trial.trial.status, startedAt: trial.trial.startedAt, endsAt: trial.trial.endsAt, enforced: trial.trial.enforced,
          nextNotice: trial.trial.nextNotice, notifications: trial.trial.notifications, extensions: trial.trial.extensions,
          paymentMethod: trial.trial.paymentMethod, cancelReason: trial.trial.cancelReason,
        }
        : null,
      trialError: trial.ok ? null : trial.error,
      notifications: notices.rows.map((n) => ({
        kind: n.kind, trialEndsAt: n.trial_ends_at.toISOString(), emailStatus: n.email_status, webhookStatus: n.webhook_status,
        webhookAttempts: n.webhook_attempts, lastError: n.last_error, createdAt: n.created_at.toISOString(), sentAt: n.sent_at?.toISOString() ?? null,
      })),
      paymentMethods: methods.rows.map((m) => ({ id: m.id, type: m.type, last4: m.last4, addedBy: m.added_by, addedAt: m.added_at.toISOString() })),
    };
  });
};
