import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signupOrgId } from '../api/routes/signup.js';
import { startTestTally, type TestTally } from './support/stack.js';

// Who may call the billing API: organisation tokens (issued, listed, revoked by operators, or the
// first one by signup), each good for its own organisation only, on every route of the family.

let tally: TestTally;
const run = randomBytes(3).toString('hex');
const orgs = [`tokens-a-${run}`, `tokens-b-${run}`] as const;
const [orgA, orgB] = orgs;
const signupInstance = `inst-signup-${run}`;
const TOKEN = /^tally_org_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/;

/** Every route of the billing API family, from the OpenAPI document, with its parameters filled in for an organisation. */
async function billingRoutes(orgId: string): Promise<{ method: string; url: string; security: unknown }[]> {
  const doc = (await tally.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, Record<string, { security?: unknown }>> };
  return Object.entries(doc.paths)
    .filter(([path]) => path.startsWith('/v1/organisations/{orgId}'))
    .flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({
      method: method.toUpperCase(),
      url: path.replace('{orgId}', orgId).replace('{day}', '2026-01-01').replace('{amountType}', 'container-seconds').replace('{thresholdId}', 'thr_000000000000'),
      security: op.security,
    })));
}

beforeAll(async () => {
  tally = await startTestTally();
  for (const id of orgs) {
    const res = await tally.app.inject({ method: 'POST', url: '/admin/organisations', headers: tally.adminAuth, payload: { id, name: id, internalInstanceId: `inst-${id}` } });
    expect(res.statusCode).toBe(200);
  }
});
afterAll(async () => {
  for (const id of [...orgs, signupOrgId(signupInstance)]) await tally?.temporal.workflow.getHandle(`trial-${id}`).terminate('test over').catch(() => undefined);
  await tally?.close();
});

describe('organisation tokens', () => {
  let issued: { id: string; token: string };

  it('are issued by operators, shown once, stored hashed', async () => {
    const res = await tally.app.inject({ method: 'POST', url: `/admin/organisations/${orgA}/tokens`, headers: tally.adminAuth, payload: { name: 'dashboard' } });
    expect(res.statusCode).toBe(201);
    issued = res.json();
    expect(issued).toMatchObject({ orgId: orgA, name: 'dashboard', lastUsedAt: null, revokedAt: null, token: expect.stringMatching(TOKEN) });
    const { rows } = await tally.db.query('SELECT secret_hash FROM org_tokens WHERE id = $1', [issued.id]);
    expect(rows[0].secret_hash).toHaveLength(32);
    expect(JSON.stringify(rows)).not.toContain(issued.token.slice(-43));

    const unknown = await tally.app.inject({ method: 'POST', url: '/admin/organisations/nobody/tokens', headers: tally.adminAuth, payload: { name: 'x' } });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('ORG_NOT_FOUND');
    // Admin routes are the operators': an organisation token does not open them.
    const asCustomer = await tally.app.inject({ method: 'GET', url: `/admin/organisations/${orgA}/tokens`, headers: { authorization: `Bearer ${issued.token}` } });
    expect(asCustomer.statusCode).toBe(401);
  });

  it("open every route of their own organisation, and none of another's (404, as if it did not exist)", async () => {
    const own = { authorization: `Bearer ${issued.token}` };
    expect((await tally.app.inject({ method: 'GET', url: `/v1/organisations/${orgA}/usage`, headers: own })).statusCode).toBe(200);
    const tokenOfB = await tally.orgAuth(orgB);
    const routes = await billingRoutes(orgA);
    expect(routes.length).toBeGreaterThanOrEqual(10);
    for (const route of routes) {
      expect(route.security, `${route.method} ${route.url}`).toEqual([{ orgToken: [] }]);
      for (const headers of [tokenOfB, own]) {
        const unknownOrg = await tally.app.inject({ method: route.method as 'GET', url: route.url.replace(orgA, `nobody-${run}`), headers, payload: {} });
        expect(unknownOrg.statusCode, `${route.method} ${route.url} of an unknown organisation`).toBe(404);
        expect(unknownOrg.json()).toEqual({ code: 'ORG_NOT_FOUND', message: `no organisation nobody-${run}` });
      }
      const other = await tally.app.inject({ method: route.method as 'GET', url: route.url, headers: tokenOfB, payload: {} });
      expect(other.statusCode, `${route.method} ${route.url} with B's token`).toBe(404);
      // The same answer as for an organisation that does not exist: nothing tells that A exists.
      expect(other.json()).toEqual({ code: 'ORG_NOT_FOUND', message: `no organisation ${orgA}` });
    }
  });

  it('answer 401 with a code when missing, malformed or unknown, on every route', async () => {
    const cases: [Record<string, string>, string][] = [
      [{}, 'ORG_TOKEN_MISSING'],
      [{ authorization: 'Bearer nonsense' }, 'ORG_TOKEN_MALFORMED'],
      [{ authorization: `Bearer ${issued.token.slice(0, -1)}${issued.token.endsWith('x') ? 'y' : 'x'}` }, 'ORG_TOKEN_UNKNOWN'],
      [{ authorization: `Bearer tally_org_000000000000_${'A'.repeat(43)}` }, 'ORG_TOKEN_UNKNOWN'],
      [tally.auth, 'ORG_TOKEN_MALFORMED'], // a producer's ingest key is not an organisation token
    ];
    for (const route of await billingRoutes(orgA)) {
      for (const [headers, code] of cases) {
        const res = await tally.app.inject({ method: route.method as 'GET', url: route.url, headers, payload: {} });
        expect(res.statusCode, `${route.method} ${route.url} ${code}`).toBe(401);
        expect(res.json()).toEqual({ code, message: expect.any(String) });
      }
    }
  });

  it('are listed without secrets, with their last use, and revoked at once', async () => {
    const list = await tally.app.inject({ method: 'GET', url: `/admin/organisations/${orgA}/tokens`, headers: tally.adminAuth });
    expect(list.statusCode).toBe(200);
    const listed = list.json().tokens.find((t: { id: string }) => t.id === issued.id);
    expect(listed).toEqual({ id: issued.id, orgId: orgA, name: 'dashboard', createdAt: expect.any(String), lastUsedAt: expect.any(String), revokedAt: null });
    expect(list.body).not.toContain(issued.token);

    // Revoking through another organisation's path finds nothing.
    const wrongOrg = await tally.app.inject({ method: 'DELETE', url: `/admin/organisations/${orgB}/tokens/${issued.id}`, headers: tally.adminAuth });
    expect(wrongOrg.statusCode).toBe(404);
    const revoked = await tally.app.inject({ method: 'DELETE', url: `/admin/organisations/${orgA}/tokens/${issued.id}`, headers: tally.adminAuth });
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json().revokedAt).toEqual(expect.any(String));
    const refused = await tally.app.inject({ method: 'GET', url: `/v1/organisations/${orgA}/usage`, headers: { authorization: `Bearer ${issued.token}` } });
    expect(refused.statusCode).toBe(401);
    expect(refused.json().code).toBe('ORG_TOKEN_REVOKED');
    // Revoked, not deleted: the list still shows it.
    const after = (await tally.app.inject({ method: 'GET', url: `/admin/organisations/${orgA}/tokens`, headers: tally.adminAuth })).json();
    expect(after.tokens.find((t: { id: string }) => t.id === issued.id).revokedAt).toBe(revoked.json().revokedAt);
    expect((await tally.app.inject({ method: 'GET', url: '/admin/organisations/nobody/tokens', headers: tally.adminAuth })).statusCode).toBe(404);
  });
});

describe('self-service signup', () => {
  const payload = { name: 'Signup Ltd', internalInstanceId: signupInstance, contact: { firstName: 'Ada', lastName: 'L', workEmail: 'ada@example.com' } };

  it('registers the organisation as operators do, and answers its first token', async () => {
    const res = await tally.app.inject({ method: 'POST', url: '/v1/signup', payload });
    expect(res.statusCode).toBe(201);
    const { organisation, token } = res.json();
    expect(organisation).toEqual({ id: signupOrgId(signupInstance), name: 'Signup Ltd', internalInstanceId: signupInstance, zuoraAccountNumber: expect.stringMatching(/^A\d+$/) });
    expect(token).toMatchObject({ orgId: organisation.id, name: 'signup', token: expect.stringMatching(TOKEN) });
    // Its Zuora account, its trial workflow: what POST /admin/organisations makes.
    expect((await tally.zuora.account(organisation.zuoraAccountNumber)).accountNumber).toBe(organisation.zuoraAccountNumber);
    const trial = await tally.app.inject({ method: 'GET', url: `/v1/organisations/${organisation.id}/trial`, headers: { authorization: `Bearer ${token.token}` } });
    expect(trial.statusCode).toBe(200);
    expect(trial.json()).toMatchObject({ orgId: organisation.id, status: 'trial', daysLeft: tally.config.TRIAL_DAYS });
    const asOperator = await tally.app.inject({ method: 'POST', url: '/admin/organisations', headers: tally.adminAuth, payload: { id: organisation.id, ...payload } });
    expect(asOperator.json()).toEqual(organisation);
  });

  it('never hands out a second token, nor one for an instance already registered', async () => {
    const again = await tally.app.inject({ method: 'POST', url: '/v1/signup', payload });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'ALREADY_SIGNED_UP', field: 'internalInstanceId' });
    expect(again.body).not.toContain('tally_org_');
    const taken = await tally.app.inject({ method: 'POST', url: '/v1/signup', payload: { ...payload, internalInstanceId: `inst-${orgA}` } });
    expect(taken.statusCode).toBe(409);
    expect(taken.json()).toMatchObject({ code: 'INSTANCE_ALREADY_REGISTERED', field: 'internalInstanceId' });
    // It says the instance is taken, not by whom.
    expect(taken.json().message).toBe(`instance inst-${orgA} already belongs to an organisation`);
  });

  it('names the field of a bad request', async () => {
    const res = await tally.app.inject({ method: 'POST', url: '/v1/signup', payload: { ...payload, contact: { firstName: 'A', lastName: 'B' } } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'INVALID_REQUEST', field: 'contact.workEmail' });
  });
});

describe('the document', () => {
  it('has every /v1 route with its schema and the organisation token scheme, and a docs UI', async () => {
    const doc = (await tally.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const v1 = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .filter(([path]) => path.startsWith('/v1/'))
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`));
    expect(v1.sort()).toEqual([
      'DELETE /v1/organisations/{orgId}/thresholds/{thresholdId}',
      'GET /v1/batches/{batchId}',
      'GET /v1/organisations/{orgId}/invoices',
      'GET /v1/organisations/{orgId}/payment-method',
      'GET /v1/organisations/{orgId}/thresholds',
      'GET /v1/organisations/{orgId}/trial',
      'GET /v1/organisations/{orgId}/usage',
      'GET /v1/organisations/{orgId}/usage/live',
      'GET /v1/organisations/{orgId}/usage/{day}/{amountType}/events',
      'POST /v1/events',
      'POST /v1/organisations/{orgId}/thresholds',
      'POST /v1/signup',
      'PUT /v1/organisations/{orgId}/payment-method',
    ]);
    expect(doc.components.securitySchemes.orgToken).toMatchObject({ type: 'http', scheme: 'bearer' });
    const usage = doc.paths['/v1/organisations/{orgId}/usage'].get;
    expect(Object.keys(usage.responses['200'].content).sort()).toEqual(['application/json', 'text/csv']);
    expect(usage.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['format', 'from', 'orgId', 'to']);
    expect(doc.paths['/admin/organisations/{orgId}/tokens'].post.security).toEqual([{ adminToken: [] }]);

    const docs = await tally.app.inject({ method: 'GET', url: '/docs/' });
    expect(docs.statusCode).toBe(200);
    expect(docs.headers['content-type']).toMatch(/text\/html/);
  });

  it('answers an unknown route in the one error shape', async () => {
    const res = await tally.app.inject({ method: 'GET', url: '/v1/nothing-here' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ code: 'ROUTE_NOT_FOUND', message: expect.stringContaining('/v1/nothing-here') });
  });
});
