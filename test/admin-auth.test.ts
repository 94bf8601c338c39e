import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../api/app.js';
import { startTestTally, type TestTally } from './support/stack.js';

let tally: TestTally;
let closed: TestTally['app'];
beforeAll(async () => {
  tally = await startTestTally();
  // A second app on the same stack with no ADMIN_TOKEN: admin must be closed, not open.
  closed = await buildApp({ config: { ...tally.config, ADMIN_TOKEN: '' }, db: tally.db, temporal: tally.temporal, zuora: tally.zuora });
});
afterAll(async () => {
  await closed?.close();
  await tally?.close();
});

describe('operator authentication', () => {
  it('lets the operator token through and refuses anything else with a reason', async () => {
    const get = (headers: Record<string, string>) => tally.app.inject({ method: 'GET', url: '/admin/api-keys', headers });
    expect((await get(tally.adminAuth)).statusCode).toBe(200);
    const missing = await get({});
    expect(missing.statusCode).toBe(401);
    expect(missing.json().code).toBe('ADMIN_TOKEN_MISSING');
    const wrong = await get({ authorization: `${tally.adminAuth.authorization}x` });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().code).toBe('ADMIN_TOKEN_INVALID');
    // A producer key is not an operator credential.
    expect((await get(tally.auth)).statusCode).toBe(401);
  });

  it('guards every admin route, including ones that start workflows, before their validation runs', async () => {
    for (const [method, url] of [['POST', '/admin/organisations'], ['POST', '/admin/aggregations'], ['POST', '/admin/trials/x/extend'], ['DELETE', '/admin/api-keys/key_000000000000']] as const) {
      const res = await tally.app.inject({ method, url, payload: {} });
      expect(res.statusCode, `${method} ${url}`).toBe(401);
    }
  });

  it('keeps admin closed when no token is configured', async () => {
    const res = await closed.inject({ method: 'GET', url: '/admin/api-keys', headers: { authorization: 'Bearer ' } });
    expect(res.statusCode).toBe(403);
    expect(res.json().code).toBe('ADMIN_DISABLED');
  });

  it('marks every admin route in the OpenAPI document as needing the operator token', async () => {
    const doc = (await tally.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const adminOps = Object.entries(doc.paths as Record<string, Record<string, { security?: unknown }>>)
      .filter(([path]) => path.startsWith('/admin/'))
      .flatMap(([, ops]) => Object.values(ops));
    expect(adminOps.length).toBeGreaterThan(5);
    for (const op of adminOps) expect(op.security).toEqual([{ adminToken: [] }]);
  });
});
