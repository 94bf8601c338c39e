import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { workflowUrl } from '../../core/temporal-links.js';
import { cancelTrial, convertTrial, extendTrial, MAX_EXTENSION_DAYS, trialWorkflowId, type TrialView } from '../../workflows/trial.js';
import { ErrorBody, StringEnum } from '../schemas.js';
import { readTrial, updateTrial, type TrialOutcome } from '../trial-workflow.js';

const Notification = Type.Object({ kind: Type.String(), trialEndsAt: Type.String(), at: Type.String() });
const Trial = Type.Object({
  orgId: Type.String(),
  status: StringEnum(['trial', 'paid', 'trial_expired', 'cancelled']),
  startedAt: Type.String(),
  endsAt: Type.String(),
  nextNotice: Type.Union([Type.Object({ kind: Type.String(), at: Type.String() }), Type.Null()]),
  enforced: Type.Boolean(),
  reminderDaysBefore: Type.Array(Type.Integer()),
  notifications: Type.Array(Notification),
  extensions: Type.Array(Type.Object({ days: Type.Integer(), at: Type.String(), by: Type.String() })),
  paymentMethod: Type.Union([Type.Object({ id: Type.String(), type: Type.String(), last4: Type.Optional(Type.String()) }), Type.Null()]),
  cancelReason: Type.Union([Type.String(), Type.Null()]),
});
const TrialAnswer = Type.Object({
  workflowId: Type.String(),
  temporalUrl: Type.String({ description: 'The trial workflow in the Temporal UI' }),
  trial: Trial,
});
const OrgParams = Type.Object({ orgId: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._-]+$' }) });
const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'A retried request with the same key is applied once (the Temporal update id)' })),
});
const errors = { 400: ErrorBody, 404: ErrorBody, 409: ErrorBody };

/** Operators (and the billing API, through the same routes) act on an organisation's trial through Temporal updates. */
export const trialRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, temporal } = app.deps;
  const answer = (orgId: string, trial: TrialView) => {
    const workflowId = trialWorkflowId(orgId);
    const { workflowId: _ignored, contactEmail: _private, remindersFrom: _internal, ...rest } = trial;
    return { workflowId, temporalUrl: workflowUrl(config.TEMPORAL_UI_URL, config.TEMPORAL_NAMESPACE, workflowId), trial: rest };
  };
  const respond = (orgId: string, reply: FastifyReply, outcome: TrialOutcome) =>
    outcome.ok ? answer(orgId, outcome.trial) : reply.code(outcome.status).send(outcome.error);
  const update = async (orgId: string, reply: FastifyReply, run: Parameters<typeof updateTrial>[2]) =>
    respond(orgId, reply, await updateTrial(temporal, orgId, run));

  app.get('/admin/trials/:orgId', {
    schema: { summary: "An organisation's trial: state, end date, notifications sent", tags: ['admin'], params: OrgParams, response: { 200: TrialAnswer, 404: ErrorBody } },
  }, async (req, reply) => respond(req.params.orgId, reply, await readTrial(temporal, req.params.orgId)));

  app.post('/admin/trials/:orgId/extend', {
    schema: {
      summary: 'Extend a running trial by whole days; its reminders move with its end', tags: ['admin'],
      params: OrgParams, headers: IdempotencyHeaders,
      body: Type.Object({ days: Type.Integer({ minimum: 1, maximum: MAX_EXTENSION_DAYS }), by: Type.Optional(Type.String({ maxLength: 128 })) }),
      response: { 200: TrialAnswer, ...errors },
    },
  }, async (req, reply) => update(req.params.orgId, reply, (h) =>
    h.executeUpdate(extendTrial, { args: [req.body], ...(req.headers['idempotency-key'] ? { updateId: req.headers['idempotency-key'] } : {}) })));

  app.post('/admin/trials/:orgId/convert', {
    schema: {
      summary: 'Add a payment method: the trial ends and the organisation is paid (an enforcement is lifted)', tags: ['admin'],
      description: "The payment method becomes the default of the organisation's Zuora account, is recorded in Tally (payment_methods), and the trial ends as paid.",
      params: OrgParams, headers: IdempotencyHeaders,
      body: Type.Object({
        paymentMethod: Type.Object({
          id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
          type: Type.String({ minLength: 1, maxLength: 64, description: 'CreditCard, ACH, PayPal, ...' }),
          last4: Type.Optional(Type.String({ pattern: '^\\d{4}$' })),
          expiry: Type.Optional(Type.String({ pattern: '^(0[1-9]|1[0-2])/\\d{4}$', description: 'MM/YYYY' })),
        }),
        by: Type.Optional(Type.String({ maxLength: 128 })),
      }),
      response: { 200: TrialAnswer, ...errors },
    },
  }, async (req, reply) => update(req.params.orgId, reply, (h) =>
    h.executeUpdate(convertTrial, { args: [req.body], ...(req.headers['idempotency-key'] ? { updateId: req.headers['idempotency-key'] } : {}) })));

  app.post('/admin/trials/:orgId/cancel', {
    schema: {
      summary: 'Cancel a trial (running or expired)', tags: ['admin'], params: OrgParams, headers: IdempotencyHeaders,
      body: Type.Optional(Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500 })), by: Type.Optional(Type.String({ maxLength: 128 })) })),
      response: { 200: TrialAnswer, ...errors },
    },
  }, async (req, reply) => update(req.params.orgId, reply, (h) =>
    h.executeUpdate(cancelTrial, { args: [req.body ?? {}], ...(req.headers['idempotency-key'] ? { updateId: req.headers['idempotency-key'] } : {}) })));
};
