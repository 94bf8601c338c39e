import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { createHash } from 'node:crypto';
import { Organisation, RegistrationFields, registerOrganisation } from '../organisations.js';
import { zuoraUnavailable } from '../payment-methods.js';
import { ErrorBody } from '../schemas.js';
import { IssuedOrgToken } from './org-tokens.js';

/**
 * A signup's organisation id is made from its instance id, so a signup retried after a failure
 * half way (Zuora or Temporal down) resumes the same registration instead of leaving the
 * instance claimed by an organisation nobody holds a token for.
 */
export function signupOrgId(internalInstanceId: string): string {
  return `org-${createHash('sha256').update(internalInstanceId).digest('hex').slice(0, 16)}`;
}

/** Self-service registration: what POST /admin/organisations does, plus the organisation's first token. */
export const signupRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/v1/signup', {
    schema: {
      summary: 'Register your organisation and get its first billing API token',
      description: 'Registers the organisation as POST /admin/organisations does (its Zuora account, its trial) and answers its first token, once: '
        + 'a second signup of the same instance answers 409 and no token (ask an operator for another). Off when SIGNUP_ENABLED=false.',
      tags: ['billing'],
      body: Type.Object({
        name: RegistrationFields.name,
        internalInstanceId: RegistrationFields.internalInstanceId,
        currency: RegistrationFields.currency,
        // The trial's reminders go to workEmail: a customer signing up must give one.
        contact: Type.Object({
          firstName: Type.String({ minLength: 1, maxLength: 100 }),
          lastName: Type.String({ minLength: 1, maxLength: 100 }),
          workEmail: Type.String({ format: 'email', maxLength: 254 }),
        }),
      }),
      response: {
        201: Type.Object({ organisation: Organisation, token: IssuedOrgToken }),
        400: ErrorBody, 403: ErrorBody, 409: ErrorBody, 502: ErrorBody,
      },
    },
  }, async (req, reply) => {
    if (!app.deps.config.SIGNUP_ENABLED) {
      return reply.code(403).send({ code: 'SIGNUP_DISABLED', message: 'self-service signup is off here; an operator registers organisations' });
    }
    const id = signupOrgId(req.body.internalInstanceId);
    let registered;
    try {
      registered = await registerOrganisation(app.deps, { id, ...req.body });
    } catch (err) {
      const failure = zuoraUnavailable(err);
      if (!failure) throw err;
      return reply.code(502).send({ ...failure, message: `${failure.message}; the signup resumes when sent again` });
    }
    if (!registered.ok) {
      return reply.code(409).send({ code: 'INSTANCE_ALREADY_REGISTERED', field: 'internalInstanceId', message: `instance ${req.body.internalInstanceId} already belongs to an organisation` });
    }
    const token = await app.orgTokens.issueFirst(id, 'signup');
    if (!token) {
      return reply.code(409).send({
        code: 'ALREADY_SIGNED_UP', field: 'internalInstanceId',
        message: `instance ${req.body.internalInstanceId} has signed up already and its token was issued; an operator can issue another`,
      });
    }
    return reply.code(201).send({ organisation: registered.organisation, token });
  });
};
