import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { findOrganisation } from '../organisations.js';
import { zuoraUnavailable } from '../payment-methods.js';
import { orgTokenSecurity } from '../plugins/org-auth.js';
import { ErrorBody, OrgIdParams } from '../schemas.js';

const Money = Type.String({ pattern: '^-?\\d+(\\.\\d+)?$', description: "Decimal string in the account's currency" });
const Invoice = Type.Object({
  id: Type.String(),
  invoiceNumber: Type.String(),
  invoiceDate: Type.String(),
  dueDate: Type.String(),
  amount: Money,
  balance: Money,
  status: Type.String({ description: "Zuora's status: Draft, Posted, Canceled, …" }),
});

/** The organisation's invoices, straight from Zuora (Tally keeps no copy: Zuora is the ledger of money). */
export const invoiceRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { db, zuora } = app.deps;

  app.get('/v1/organisations/:orgId/invoices', {
    schema: {
      summary: "The organisation's invoices, newest first",
      tags: ['billing'], security: orgTokenSecurity, params: OrgIdParams,
      response: {
        200: Type.Object({
          orgId: Type.String(),
          zuoraAccountNumber: Type.Union([Type.String(), Type.Null()]),
          invoices: Type.Array(Invoice),
        }),
        401: ErrorBody, 404: ErrorBody, 502: ErrorBody,
      },
    },
  }, async (req, reply) => {
    const org = await findOrganisation(db, req.params.orgId);
    if (!org) return reply.code(404).send({ code: 'ORG_NOT_FOUND', message: `no organisation ${req.params.orgId}` });
    // An organisation whose Zuora account is not made yet has had nothing invoiced.
    if (!org.zuoraAccountNumber) return { orgId: org.id, zuoraAccountNumber: null, invoices: [] };
    try {
      const invoices = await zuora.accountInvoices(org.zuoraAccountNumber);
      return {
        orgId: org.id,
        zuoraAccountNumber: org.zuoraAccountNumber,
        // Zuora's JSON may carry amounts as numbers: answer strings, like every amount in this API.
        invoices: invoices.map((i) => ({ id: i.id, invoiceNumber: i.invoiceNumber, invoiceDate: i.invoiceDate, dueDate: i.dueDate, amount: String(i.amount), balance: String(i.balance), status: i.status })),
      };
    } catch (err) {
      const failure = zuoraUnavailable(err);
      if (!failure) throw err;
      return reply.code(502).send(failure);
    }
  });
};
