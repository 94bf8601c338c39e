import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { WorkflowUpdateStage } from '@temporalio/client';
import type { FastifyReply } from 'fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import { convertTrial } from '../../workflows/trial.js';
import { findOrganisation, type OrganisationRecord } from '../organisations.js';
import { paymentMethodId, paymentMethodsOf, replacePaymentMethod, zuoraUnavailable } from '../payment-methods.js';
import { orgTokenSecurity } from '../plugins/org-auth.js';
import { inTransaction } from '../../db/pool.js';
import { ErrorBody, OrgIdParams } from '../schemas.js';
import { updateTrial } from '../trial-workflow.js';

const PaymentMethod = Type.Object({
  id: Type.String(),
  type: Type.String(),
  last4: Type.Union([Type.String(), Type.Null()]),
  expiry: Type.Union([Type.String(), Type.Null()]),
  addedAt: Type.String(),
});
const PaymentMethodAnswer = Type.Object({
  orgId: Type.String(),
  status: Type.String({ description: 'trial, trial_expired, paid or cancelled' }),
  paymentMethod: Type.Union([PaymentMethod, Type.Null()], { description: 'The default payment method; null before one is added' }),
  zuoraDefaultPaymentMethodId: Type.Union([Type.String(), Type.Null()], { description: "The default payment method of the organisation's Zuora account" }),
});
const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody, 502: ErrorBody };
const Pending = Type.Object({
  orgId: Type.String(),
  status: Type.Literal('pending'),
  updateId: Type.String({ description: 'The convertTrial update of trial-<orgId> that carries on in Temporal' }),
  message: Type.String(),
});

/** MM/YYYY of a card still valid this month (cards run to the end of their month). */
function expired(expiry: string, now = new Date()): boolean {
  const [month, year] = expiry.split('/').map(Number) as [number, number];
  return year * 12 + month < now.getUTCFullYear() * 12 + now.getUTCMonth() + 1;
}

/** The customer adds a payment method: a trial converts to paid, a paid organisation changes its default. */
export const paymentMethodRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db, temporal, zuora } = app.deps;

  async function answer(org: OrganisationRecord, reply: FastifyReply) {
    let zuoraDefault: string | null = null;
    try {
      if (org.zuoraAccountNumber) zuoraDefault = (await zuora.account(org.zuoraAccountNumber)).defaultPaymentMethodId;
    } catch (err) {
      const failure = zuoraUnavailable(err);
      if (!failure) throw err;
      return reply.code(502).send(failure);
    }
    // One snapshot: the conversion writes the status and the method in one transaction, and two
    // reads apart could see the one without the other (paid, with no payment method).
    const { current, fresh } = await inTransaction(db, async (client) => ({
      current: (await paymentMethodsOf(client, org.id))[0],
      fresh: await findOrganisation(client, org.id),
    }), 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    return {
      orgId: org.id, status: fresh?.status ?? org.status, zuoraDefaultPaymentMethodId: zuoraDefault,
      paymentMethod: current ? { id: current.id, type: current.type, last4: current.last4, expiry: current.expiry, addedAt: current.addedAt } : null,
    };
  }

  app.get('/v1/organisations/:orgId/payment-method', {
    schema: {
      summary: "The organisation's default payment method",
      tags: ['billing'], security: orgTokenSecurity, params: OrgIdParams,
      response: { 200: PaymentMethodAnswer, 401: ErrorBody, 404: ErrorBody, 502: ErrorBody },
    },
  }, async (req, reply) => {
    const org = await findOrganisation(db, req.params.orgId);
    if (!org) return reply.code(404).send({ code: 'ORG_NOT_FOUND', message: `no organisation ${req.params.orgId}` });
    return answer(org, reply);
  });

  app.put('/v1/organisations/:orgId/payment-method', {
    schema: {
      summary: 'Add a payment method: it becomes the default, and a trial becomes paid',
      description: "Adds the method to the organisation's Zuora account as its default. During the trial (or after it expired) this converts the trial "
        + '(the convertTrial update of trial-<orgId>), which lifts any enforcement. Tally keeps the type, last four digits and expiry, never a card number. '
        + 'A request repeated with the same Idempotency-Key is applied once and answers the same.',
      tags: ['billing'], security: orgTokenSecurity, params: OrgIdParams,
      headers: Type.Object({
        'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Retry with the same key to add the method once' })),
      }),
      body: Type.Object({
        type: Type.String({ minLength: 1, maxLength: 64, description: 'CreditCard, ACH, PayPal, …' }),
        last4: Type.Optional(Type.String({ pattern: '^\\d{4}$', description: "The card's last four digits (CreditCard: required)" })),
        expiry: Type.Optional(Type.String({ pattern: '^(0[1-9]|1[0-2])/\\d{4}$', description: 'MM/YYYY (CreditCard: required)' })),
      }),
      response: { 200: PaymentMethodAnswer, 202: Pending, ...errors },
    },
  }, async (req, reply) => {
    const { orgId } = req.params;
    const method = req.body;
    if (method.type === 'CreditCard') {
      for (const field of ['last4', 'expiry'] as const) {
        if (method[field] === undefined) return reply.code(400).send({ code: 'INVALID_PAYMENT_METHOD', field, message: `a CreditCard needs ${field}` });
      }
    }
    if (method.expiry && expired(method.expiry)) return reply.code(400).send({ code: 'CARD_EXPIRED', field: 'expiry', message: `the card expired at the end of ${method.expiry}` });
    const org = await findOrganisation(db, orgId);
    if (!org) return reply.code(404).send({ code: 'ORG_NOT_FOUND', message: `no organisation ${orgId}` });

    const key = req.headers['idempotency-key'];
    const id = paymentMethodId(orgId, key);
    // A retry of a request that already went through answers what it did.
    if ((await paymentMethodsOf(db, orgId, id)).length > 0) return answer(org, reply);
    const addedBy = `billing-api:${req.orgTokenId ?? 'unknown-token'}`;
    try {
      if (org.status === 'trial' || org.status === 'trial_expired') {
        // Accepted by the trial's validator first (a refusal answers at once); then the conversion's
        // Zuora call gets PAYMENT_METHOD_WAIT_MS before the answer says it carries on in Temporal.
        const updateId = `payment-method:${key ?? id}`;
        let pending = false;
        const outcome = await updateTrial(temporal, orgId, async (handle) => {
          const update = await handle.startUpdate(convertTrial, {
            args: [{ paymentMethod: { id, ...method }, by: addedBy }], updateId, waitForStage: WorkflowUpdateStage.ACCEPTED,
          });
          const waited = new AbortController();
          const done = await Promise.race([update.result(), sleep(config.PAYMENT_METHOD_WAIT_MS, null, { signal: waited.signal }).catch(() => null)]);
          waited.abort();
          if (done === null) pending = true;
          return done!;
        });
        if (!outcome.ok) return reply.code(outcome.status).send(outcome.error);
        if (pending) {
          return reply.code(202).send({
            orgId, status: 'pending' as const, updateId,
            message: `Zuora has not confirmed the payment method yet; trial-${orgId} keeps trying. GET …/payment-method shows it once added; repeat this request with the same Idempotency-Key to wait for it again.`,
          });
        }
      } else if (org.status === 'paid') {
        await replacePaymentMethod({ db, zuora }, org, { id, ...method }, addedBy);
      } else {
        return reply.code(409).send({ code: 'ORG_CANCELLED', message: `${orgId} is cancelled; ask support to reopen it before adding a payment method` });
      }
    } catch (err) {
      const failure = zuoraUnavailable(err);
      if (!failure) throw err;
      return reply.code(502).send(failure);
    }
    return answer(org, reply);
  });
};
