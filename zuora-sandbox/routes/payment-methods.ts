import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ZuoraCode, zuoraFailure } from '../errors.js';
import type { SandboxServices } from '../services.js';
import { newZuoraId } from '../state.js';

/**
 * `POST /v1/payment-methods`: Zuora's "Create a payment method" for an account. The sandbox keeps
 * the type and the last four digits, never a card number, and makes it the account's default
 * when asked (`makeDefault`), as Zuora does.
 */
export const paymentMethodRoutes: FastifyPluginAsyncTypebox<SandboxServices> = async (app, { state }) => {
  app.post('/payment-methods', {
    schema: {
      body: Type.Object({
        accountKey: Type.String({ minLength: 1 }),
        type: Type.String({ minLength: 1 }),
        cardNumber: Type.Optional(Type.String()),
        cardType: Type.Optional(Type.String()),
        expirationMonth: Type.Optional(Type.Integer({ minimum: 1, maximum: 12 })),
        expirationYear: Type.Optional(Type.Integer()),
        makeDefault: Type.Optional(Type.Boolean()),
      }),
    },
  }, async (req, reply) => {
    const account = state.findAccount(req.body.accountKey);
    if (!account) {
      return reply.code(200).send(zuoraFailure({ code: ZuoraCode.notFound, message: `Cannot find entity by key: '${req.body.accountKey}'.` }));
    }
    const paymentMethod = { id: newZuoraId(), type: req.body.type };
    if (req.body.makeDefault !== false) state.setDefaultPaymentMethod(account.id, paymentMethod);
    return { success: true, id: paymentMethod.id };
  });
};
