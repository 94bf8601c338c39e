import type { FastifyInstance } from 'fastify';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildZuoraSandbox } from '../zuora-sandbox/server.js';
import { eventually } from './support/eventually.js';
import { startTestTally, type TestTally } from './support/stack.js';

// A customer adds a card while Zuora is down: the answer does not hang on Zuora, and the card
// lands, once, when Zuora is back. Its own sandbox, so its faults touch no other test file.

let sandbox: FastifyInstance;
let tally: TestTally;
const run = randomBytes(3).toString('hex');
const orgId = `outage-${run}`;

beforeAll(async () => {
  sandbox = await buildZuoraSandbox({ clientId: 'outage', clientSecret: 'outage-secret' });
  await sandbox.listen({ host: '127.0.0.1', port: 0 });
  const { port } = sandbox.server.address() as { port: number };
  tally = await startTestTally({
    ZUORA_BASE_URL: `http://127.0.0.1:${port}`, ZUORA_CLIENT_ID: 'outage', ZUORA_CLIENT_SECRET: 'outage-secret', PAYMENT_METHOD_WAIT_MS: '1500',
  });
});
afterAll(async () => {
  await tally?.close();
  await sandbox?.close();
});

describe('a payment method while Zuora is down', () => {
  it('answers 202 within the wait, and the trial converts once Zuora is back', async () => {
    const registered = await tally.app.inject({ method: 'POST', url: '/admin/organisations', headers: tally.adminAuth, payload: { id: orgId, name: 'Outage Ltd', internalInstanceId: `inst-${run}` } });
    expect(registered.statusCode).toBe(200);
    const headers = { ...(await tally.orgAuth(orgId)), 'idempotency-key': `card-${run}` };
    const faults = (body: object | null) => sandbox.inject({ method: body ? 'PUT' : 'DELETE', url: '/sandbox/faults', ...(body ? { payload: body } : {}) });
    await faults({ errorRate: 1, errorStatus: 503, paths: ['/v1/payment-methods'] });

    const put = () => tally.app.inject({ method: 'PUT', url: `/v1/organisations/${orgId}/payment-method`, headers, payload: { type: 'CreditCard', last4: '4242', expiry: '12/2031' } });
    const started = Date.now();
    const pending = await put();
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(pending.statusCode).toBe(202);
    expect(pending.json()).toMatchObject({ status: 'pending', updateId: `payment-method:card-${run}` });
    expect((await tally.app.inject({ method: 'GET', url: `/v1/organisations/${orgId}/payment-method`, headers })).json()).toMatchObject({ status: 'trial', paymentMethod: null });

    await faults(null);
    const converted = await eventually(async () => {
      const res = (await tally.app.inject({ method: 'GET', url: `/v1/organisations/${orgId}/payment-method`, headers })).json();
      expect(res.status).toBe('paid');
      return res;
    }, 60_000);
    expect(converted.paymentMethod).toMatchObject({ type: 'CreditCard', last4: '4242' });
    // The same request again: applied once, answered with what it did.
    const again = await put();
    expect(again.statusCode).toBe(200);
    expect(again.json().paymentMethod.id).toBe(converted.paymentMethod.id);
    const methods = await tally.db.query('SELECT count(*)::int AS n FROM payment_methods WHERE org_id = $1', [orgId]);
    expect(methods.rows[0].n).toBe(1);
  });
});
