import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { orgTokenSecurity } from '../plugins/org-auth.js';
import { ErrorBody, OrgIdParams, StringEnum } from '../schemas.js';
import { readTrial } from '../trial-workflow.js';

const DAY_MS = 86_400_000;

/** The customer's view of its trial: what it needs to act on, not the operators' history of notices. */
export const organisationTrialRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { temporal } = app.deps;

  app.get('/v1/organisations/:orgId/trial', {
    schema: {
      summary: "The organisation's trial: status and end date",
      description: 'Read from the trial workflow (trial-<orgId>). status is trial, trial_expired (usage is restricted until a payment method is added), paid or cancelled.',
      tags: ['billing'], security: orgTokenSecurity, params: OrgIdParams,
      response: {
        200: Type.Object({
          orgId: Type.String(),
          status: StringEnum(['trial', 'paid', 'trial_expired', 'cancelled']),
          startedAt: Type.String(),
          endsAt: Type.String(),
          daysLeft: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'Whole days until the end, counting a started day; null unless in trial' }),
          restricted: Type.Boolean({ description: 'The trial expired and its restrictions are in force' }),
          paymentMethod: Type.Union([Type.Object({ type: Type.String(), last4: Type.Optional(Type.String()) }), Type.Null()]),
        }),
        401: ErrorBody, 404: ErrorBody,
      },
    },
  }, async (req, reply) => {
    const outcome = await readTrial(temporal, req.params.orgId);
    if (!outcome.ok) return reply.code(outcome.status).send(outcome.error);
    const { trial } = outcome;
    return {
      orgId: trial.orgId, status: trial.status, startedAt: trial.startedAt, endsAt: trial.endsAt,
      daysLeft: trial.status === 'trial' ? Math.max(0, Math.ceil((Date.parse(trial.endsAt) - Date.now()) / DAY_MS)) : null,
      restricted: trial.enforced,
      paymentMethod: trial.paymentMethod ? { type: trial.paymentMethod.type, ...(trial.paymentMethod.last4 ? { last4: trial.paymentMethod.last4 } : {}) } : null,
    };
  });
};
