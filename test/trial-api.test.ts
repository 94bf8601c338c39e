import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestTally, type TestTally } from './support/stack.js';

// The trial routes on the real stack: registration starts trial-<orgId>, operators act on it
// through Temporal updates and see why a request was refused.

let tally: TestTally;
const run = randomBytes(3).toString('hex');
const orgId = `trial-org-${run}`;

beforeAll(async () => {
  tally = await startTestTally({ TRIAL_DAYS: '14' });
});
afterAll(async () => {
  await tally.temporal.workflow.getHandle(`trial-${orgId}`).terminate('test over').catch(() => undefined);
  await tally?.close();
});

describe('trial routes', () => {
  it('registering an organisation starts its trial, once', async () => {
    const payload = { id: orgId, name: `Org ${run}`, internalInstanceId: `inst-${run}`, contact: { firstName: 'Ada', lastName: 'L', workEmail: 'ada@example.com' } };
    expect((await tally.app.inject({ method: 'POST', url: '/admin/organisations', headers: tally.adminAuth, payload })).statusCode).toBe(200);
    expect((await tally.app.inject({ method: 'POST', url: '/admin/organisations', headers: tally.adminAuth, payload })).statusCode).toBe(200);
    const description = await tally.temporal.workflow.getHandle(`trial-${orgId}`).describe();
    expect(description.status.name).toBe('RUNNING');
    expect(description.searchAttributes.OrgId).toEqual([orgId]);

    const res = await tally.app.inject({ method: 'GET', url: `/admin/trials/${orgId}`, headers: tally.adminAuth });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.temporalUrl).toContain(`/workflows/trial-${orgId}`);
    expect(body.trial).toMatchObject({ orgId, status: 'trial', nextNotice: { kind: 'reminder-7d' } });
    expect(Date.parse(body.trial.endsAt) - Date.parse(body.trial.startedAt)).toBe(14 * 86_400_000);
  });

  it('extends, refusing what makes no sense with a reason', async () => {
    const bad = await tally.app.inject({ method: 'POST', url: `/admin/trials/${orgId}/extend`, headers: tally.adminAuth, payload: { days: 0 } });
    expect(bad.statusCode).toBe(400);
    const ok = await tally.app.inject({ method: 'POST', url: `/admin/trials/${orgId}/extend`, payload: { days: 7 }, headers: { ...tally.adminAuth, 'idempotency-key': `extend-${run}` } });
    expect(ok.statusCode).toBe(200);
    // The same request again (same Idempotency-Key) is applied once.
    const again = await tally.app.inject({ method: 'POST', url: `/admin/trials/${orgId}/extend`, payload: { days: 7 }, headers: { ...tally.adminAuth, 'idempotency-key': `extend-${run}` } });
    expect(again.json().trial.endsAt).toBe(ok.json().trial.endsAt);
    expect(again.json().trial.extensions).toHaveLength(1);
    const { rows } = await tally.db.query('SELECT status, trial_ends_at FROM organisations WHERE id = $1', [orgId]);
    expect(rows[0].trial_ends_at.toISOString()).toBe(ok.json().trial.endsAt);
    expect(rows[0].status).toBe('trial');
  });

  it('keeps accepting the usage of an organisation whose trial expired', async () => {
    await tally.db.query("UPDATE organisations SET status = 'trial_expired' WHERE id = $1", [orgId]);
    const res = await tally.app.inject({
      method: 'POST', url: '/v1/events', headers: tally.auth,
      payload: { events: [{ uniqueKey: `${run}-expired-1`, internalInstanceId: `inst-${run}`, timestamp: new Date().toISOString(), amounts: { 'container-seconds': 60 }, metadata: {} }] },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().results[0].status).toBe('accepted');
    await tally.db.query("UPDATE organisations SET status = 'trial' WHERE id = $1", [orgId]);
  });

  it('converts with a payment method, and then refuses to cancel a paid trial', async () => {
    const res = await tally.app.inject({ method: 'POST', url: `/admin/trials/${orgId}/convert`, headers: tally.adminAuth, payload: { paymentMethod: { type: 'CreditCard', last4: '4242' } } });
    expect(res.statusCode).toBe(200);
    expect(res.json().trial).toMatchObject({ status: 'paid', paymentMethod: { type: 'CreditCard', last4: '4242' } });
    const org = (await tally.db.query('SELECT status, zuora_account_number FROM organisations WHERE id = $1', [orgId])).rows[0];
    expect(org.status).toBe('paid');
    // The organisation's Zuora account has it as its default payment method.
    expect((await tally.zuora.account(org.zuora_account_number)).defaultPaymentMethodId).toMatch(/^[0-9a-f]{32}$/);
    const cancel = await tally.app.inject({ method: 'POST', url: `/admin/trials/${orgId}/cancel`, headers: tally.adminAuth, payload: {} });
    expect(cancel.statusCode).toBe(409);
    expect(cancel.json().message).toContain('paid');
    // Still readable after the workflow finished.
    expect((await tally.app.inject({ method: 'GET', url: `/admin/trials/${orgId}`, headers: tally.adminAuth })).json().trial.status).toBe('paid');
  });

  it('answers 404 for an organisation with no trial', async () => {
    const res = await tally.app.inject({ method: 'GET', url: '/admin/trials/nobody-here', headers: tally.adminAuth });
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('TRIAL_NOT_FOUND');
  });
});
