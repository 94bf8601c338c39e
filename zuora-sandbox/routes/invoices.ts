import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ZuoraCode, zuoraFailure } from '../errors.js';
import type { Invoice } from '../model.js';
import type { SandboxServices } from '../services.js';
import { newZuoraId } from '../state.js';

/** Prices per unit of measure for sandbox bill runs: Zuora would take them from the rate plan charges. */
const DEFAULT_UNIT_PRICES: Record<string, string> = { CONTAINER_SECONDS: '0.00001', NODE_SECONDS: '0.00002', WEAVENET_SECONDS: '0.00001', SAMPLES: '0.000001' };

/** Exact decimal product of an integer quantity string and a decimal price: no floating point on money. */
function times(quantity: string, price: string): string {
  const [whole = '0', fraction = ''] = price.split('.');
  const scaled = BigInt(quantity.split('.')[0]!) * BigInt(whole + fraction);
  const digits = scaled.toString().padStart(fraction.length + 1, '0');
  const amount = fraction.length ? `${digits.slice(0, -fraction.length)}.${digits.slice(-fraction.length)}` : digits;
  return amount.replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

function sum(amounts: string[]): string {
  const scale = Math.max(0, ...amounts.map((a) => a.split('.')[1]?.length ?? 0));
  const total = amounts.reduce((n, a) => n + BigInt((a.split('.')[0] ?? '0') + (a.split('.')[1] ?? '').padEnd(scale, '0')), 0n);
  const digits = total.toString().padStart(scale + 1, '0');
  return (scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

/** `GET /v1/transactions/invoices/accounts/{account-key}`: Zuora's list of an account's invoices. */
export const invoiceRoutes: FastifyPluginAsyncTypebox<SandboxServices> = async (app, { state }) => {
  app.get('/transactions/invoices/accounts/:accountKey', {
    schema: { params: Type.Object({ accountKey: Type.String() }) },
  }, async (req, reply) => {
    const account = state.findAccount(req.params.accountKey);
    if (!account) return reply.code(404).send(zuoraFailure({ code: ZuoraCode.notFound, message: `Cannot find entity by key: '${req.params.accountKey}'.` }));
    return {
      success: true,
      invoices: state.invoicesOfAccount(account.id).map(({ lines: _lines, ...invoice }) => invoice),
    };
  });
};

/**
 * `POST /sandbox/bill-run {from, to}`: what Zuora's bill run does for usage-based charges, kept
 * small: for each account with usage whose start date lies in [from, to], one posted invoice with a
 * line per unit of measure at the sandbox's unit price. Sandbox-only: real Zuora bills on its schedule.
 */
export const billRunRoutes: FastifyPluginAsyncTypebox<SandboxServices> = async (app, { state }) => {
  app.post('/bill-run', {
    schema: { body: Type.Object({ from: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$' }), to: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$' }) }) },
  }, async (req) => {
    const { from, to } = req.body;
    const invoices: Invoice[] = [];
    for (const account of state.allAccounts()) {
      const byUnit = new Map<string, bigint>();
      for (const record of state.usageOfAccount(account.id)) {
        const day = record.startDateTime.slice(0, 10);
        if (day < from || day > to) continue;
        byUnit.set(record.unitOfMeasure, (byUnit.get(record.unitOfMeasure) ?? 0n) + BigInt(record.quantity.split('.')[0]!));
      }
      if (byUnit.size === 0) continue;
      const lines = [...byUnit].map(([unitOfMeasure, quantity]) => {
        const unitPrice = DEFAULT_UNIT_PRICES[unitOfMeasure] ?? '0';
        return { unitOfMeasure, quantity: quantity.toString(), unitPrice, amount: times(quantity.toString(), unitPrice), serviceStartDate: from, serviceEndDate: to };
      });
      const amount = sum(lines.map((l) => l.amount));
      const invoice: Invoice = {
        id: newZuoraId(), accountId: account.id, accountNumber: account.accountNumber, invoiceNumber: state.nextInvoiceNumber(),
        invoiceDate: to, dueDate: to, amount, balance: amount, status: 'Posted', lines,
      };
      state.addInvoice(invoice);
      invoices.push(invoice);
    }
    return { invoices: invoices.length, invoiceNumbers: invoices.map((i) => i.invoiceNumber) };
  });
};
