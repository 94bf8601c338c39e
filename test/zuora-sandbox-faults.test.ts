import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ZuoraClient, ZuoraError as ClientZuoraError } from '../activities/zuora-client.js';
import { sandboxSettingsFromEnv } from '../zuora-sandbox/env.js';
import { buildZuoraSandbox, type ZuoraSandboxOptions } from '../zuora-sandbox/server.js';

const CLIENT = { clientId: 'tally-test', clientSecret: 'tally-test-secret' };
const HEADER = 'ACCOUNT_ID,UOM,QTY,STARTDATE,ENDDATE,SUBSCRIPTION_ID,CHARGE_ID,DESCRIPTION,UNIQUE_KEY';
const ACME = { name: 'Acme Corp', currency: 'USD', billCycleDay: 1, billToContact: { firstName: 'Ada', lastName: 'Lovelace' } };

const apps: FastifyInstance[] = [];
async function sandbox(opts: Partial<ZuoraSandboxOptions> = {}): Promise<FastifyInstance> {
  const app = await buildZuoraSandbox({ ...CLIENT, importStepMs: 5, ...opts });
  apps.push(app);
  return app;
}
afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function tokenFor(app: FastifyInstance): Promise<string> {
  const res = await app.inject({
    method: 'POST',
    url: '/oauth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ ...{ client_id: CLIENT.clientId, client_secret: CLIENT.clientSecret }, grant_type: 'client_credentials' }).toString(),
  });
  expect(res.statusCode).toBe(200);
  return res.json().access_token as string;
}

/** Sets (PUT), adds to (POST), shows (GET) or clears (DELETE) the sandbox's faults, as a test does. */
async function faults(app: FastifyInstance, method: 'GET' | 'PUT' | 'POST' | 'DELETE', body?: object) {
  const res = await app.inject({ method, url: '/sandbox/faults', ...(body ? { payload: body } : {}) });
  expect(res.statusCode).toBe(200);
  return res.json() as { faults: Record<string, unknown>; rateLimit: { limit: number; remaining: number; resetSeconds: number } };
}

function getAccount(app: FastifyInstance, token: string, url = '/v1/accounts/A00000001') {
  return app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
}

function expectZuoraFailure(res: LightMyRequestResponse, status: number, code: number, messagePart: RegExp) {
  expect(res.statusCode).toBe(status);
  expect(res.json()).toMatchObject({ success: false, processId: expect.stringMatching(/^[0-9A-F]{16}$/), reasons: [{ code, message: expect.stringMatching(messagePart) }] });
}

const rateHeaders = (res: LightMyRequestResponse) => [res.headers['ratelimit-limit'], res.headers['ratelimit-remaining'], res.headers['ratelimit-reset']];

describe('rate limits', () => {
  it('counts API requests per tenant in fixed windows, answers 429 with Retry-After once spent, and resets', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2024-01-15T00:00:00.000Z'));
    const app = await sandbox({ rateLimit: { requestsPerWindow: 3, windowMs: 60_000 } });
    const token = await tokenFor(app); // an AUTH request: its own quota, not the API one

    const served = [await getAccount(app, token), await getAccount(app, token), await getAccount(app, token)];
    expect(served.map((res) => res.statusCode)).toEqual([404, 404, 404]);
    expect(served.map(rateHeaders)).toEqual([['3', '2', '60'], ['3', '1', '60'], ['3', '0', '60']]);

    const refused = await getAccount(app, token);
    expectZuoraFailure(refused, 429, 50000070, /exceeded the limit of 3 API requests/);
    expect(refused.json().message).toMatch(/retry after 60 seconds/);
    expect(refused.headers['retry-after']).toBe('60');
    expect(rateHeaders(refused)).toEqual(['3', '0', '60']);

    vi.setSystemTime(new Date('2024-01-15T00:00:45.000Z'));
    expect((await getAccount(app, token)).headers['retry-after']).toBe('15');
    // Neither the sandbox's own endpoints nor token requests count against the API quota.
    expect((await app.inject({ method: 'GET', url: '/sandbox/health' })).headers['ratelimit-limit']).toBeUndefined();
    expect((await app.inject({ method: 'POST', url: '/oauth/token', payload: {} })).headers['ratelimit-limit']).toBe('2000');

    vi.setSystemTime(new Date('2024-01-15T00:01:00.000Z'));
    const next = await getAccount(app, token);
    expect(next.statusCode).toBe(404);
    expect(rateHeaders(next)).toEqual(['3', '2', '60']);
    expect((await faults(app, 'GET')).rateLimit).toEqual({ limit: 3, remaining: 2, resetSeconds: 60 });
  });

  it('puts the rate-limit headers on every /v1 answer, success or failure, with Zuora defaults', async () => {
    const app = await sandbox();
    const token = await tokenFor(app);
    const created = await app.inject({ method: 'POST', url: '/v1/accounts', headers: { authorization: `Bearer ${token}` }, payload: ACME });
    const unauthenticated = await app.inject({ method: 'GET', url: '/v1/accounts/A00000001' });
    const missing = await getAccount(app, token, '/v1/no-such-thing');
    for (const [res, status] of [[created, 200], [unauthenticated, 401], [missing, 404]] as const) {
      expect(res.statusCode).toBe(status);
      expect(res.headers['ratelimit-limit']).toBe('50000');
      expect(Number(res.headers['ratelimit-remaining'])).toBeLessThan(50000);
      expect(Number(res.headers['ratelimit-reset'])).toBeGreaterThan(0);
    }
  });

  it('refuses quotas that are not positive whole numbers', async () => {
    await expect(buildZuoraSandbox({ ...CLIENT, rateLimit: { requestsPerWindow: 0, windowMs: 1000 } })).rejects.toMatchObject({ code: 'ZUORA_SANDBOX_RATE_LIMIT' });
  });
});

describe('fault switches', () => {
  it('shows, sets, adds to and clears faults, and refuses unknown ones in Zuora shape', async () => {
    const app = await sandbox();
    expect(await faults(app, 'GET')).toEqual({ faults: {}, rateLimit: { limit: 50000, remaining: 50000, resetSeconds: expect.any(Number) } });
    expect((await faults(app, 'PUT', { latencyMs: 5, failNext: 2, paths: ['/v1/usage'] })).faults).toEqual({ latencyMs: 5, failNext: 2, paths: ['/v1/usage'] });
    expect((await faults(app, 'POST', { hangImports: true, failNext: 0 })).faults).toEqual({ latencyMs: 5, hangImports: true, paths: ['/v1/usage'] });
    expect((await faults(app, 'PUT', { errorRate: 0.25 })).faults).toEqual({ errorRate: 0.25 });
    expect((await faults(app, 'DELETE')).faults).toEqual({});

    const unknown = await app.inject({ method: 'PUT', url: '/sandbox/faults', payload: { meltdown: true } });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().success).toBe(false);
    expect((await app.inject({ method: 'PUT', url: '/sandbox/faults', payload: { errorRate: 2 } })).statusCode).toBe(400);
    expect((await app.inject({ method: 'PUT', url: '/sandbox/faults', payload: { paths: ['/sandbox'] } })).statusCode).toBe(400);
  });

  it('failNext fails exactly n requests with 5xx in Zuora shape, before anything is written', async () => {
    const app = await sandbox();
    const token = await tokenFor(app);
    const create = () => app.inject({ method: 'POST', url: '/v1/accounts', headers: { authorization: `Bearer ${token}` }, payload: ACME });
    await faults(app, 'PUT', { failNext: 2, errorStatus: 503 });

    expectZuoraFailure(await create(), 503, 50000060, /temporarily unavailable/);
    expect((await faults(app, 'GET')).faults).toEqual({ failNext: 1, errorStatus: 503 });
    expectZuoraFailure(await create(), 503, 50000060, /temporarily unavailable/);
    expect((await create()).json()).toMatchObject({ success: true, accountNumber: 'A00000001' });
    expect((await app.inject({ method: 'GET', url: '/sandbox/health' })).json().accounts).toBe(1);

    await faults(app, 'PUT', { failNext: 1 });
    expectZuoraFailure(await getAccount(app, token), 500, 50000060, /internal error/);
    expect((await getAccount(app, token)).statusCode).toBe(200);
  });

  it('errorRate fails that fraction of requests until cleared, only under the given paths', async () => {
    const app = await sandbox();
    const token = await tokenFor(app);
    await faults(app, 'PUT', { errorRate: 1, paths: ['/v1/usage'] });
    for (let i = 0; i < 3; i++) expect((await getAccount(app, token, '/v1/usage/accounts/A00000001')).statusCode).toBe(500);
    expect((await getAccount(app, token, '/v1/usage/import-1/status')).statusCode).toBe(500);
    expect((await getAccount(app, token)).statusCode).toBe(404); // /v1/accounts is not under /v1/usage
    expect((await app.inject({ method: 'GET', url: '/sandbox/health' })).statusCode).toBe(200);

    await faults(app, 'DELETE');
    expect((await getAccount(app, token, '/v1/usage/accounts/A00000001')).statusCode).toBe(404);
  });

  it('latencyMs slows every /v1 request until cleared', async () => {
    const app = await sandbox();
    const token = await tokenFor(app);
    const timed = async () => {
      const started = performance.now();
      await getAccount(app, token);
      return performance.now() - started;
    };
    await faults(app, 'PUT', { latencyMs: 150 });
    expect(await timed()).toBeGreaterThanOrEqual(145);
    await faults(app, 'DELETE');
    expect(await timed()).toBeLessThan(100);
  });

  it('rateLimitStorm answers the next n requests 429 with its Retry-After; tokens are still issued', async () => {
    const app = await sandbox();
    const token = await tokenFor(app);
    await faults(app, 'PUT', { rateLimitStorm: { requests: 2, retryAfterSeconds: 7 } });
    for (let i = 0; i < 2; i++) {
      const res = await getAccount(app, token);
      expectZuoraFailure(res, 429, 50000070, /retry after 7 seconds/);
      expect(res.headers['retry-after']).toBe('7');
      expect(rateHeaders(res)).toEqual(['50000', '0', '7']);
      await tokenFor(app);
    }
    expect((await getAccount(app, token)).statusCode).toBe(404);
    expect((await faults(app, 'GET')).faults).toEqual({});
  });

  it('hangImports keeps an import Processing until cleared, then it completes', async () => {
    const app = await sandbox();
    const token = await tokenFor(app);
    const auth = { authorization: `Bearer ${token}` };
    const { accountNumber } = (await app.inject({ method: 'POST', url: '/v1/accounts', headers: auth, payload: ACME })).json();
    await faults(app, 'PUT', { hangImports: true });

    const form = new FormData();
    form.append('file', new Blob([`${HEADER}\r\n${accountNumber},SAMPLES,1,01/15/2024,,,,,h-1\r\n`]), 'usage.csv');
    const request = new Request('http://sandbox.local/v1/usage', { method: 'POST', body: form });
    const upload = await app.inject({
      method: 'POST',
      url: '/v1/usage',
      headers: { ...auth, 'content-type': request.headers.get('content-type')! },
      payload: Buffer.from(await request.arrayBuffer()),
    });
    const status = async () => (await app.inject({ method: 'GET', url: upload.json().checkImportStatus, headers: auth })).json().importStatus as string;
    const waitFor = async (wanted: string) => {
      let seen = await status();
      for (let i = 0; i < 200 && seen !== wanted && seen !== 'Failed'; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        seen = await status();
      }
      return seen;
    };

    expect(await waitFor('Processing')).toBe('Processing');
    await new Promise((resolve) => setTimeout(resolve, 100)); // twenty import steps
    expect(await status()).toBe('Processing');
    await faults(app, 'DELETE');
    expect(await waitFor('Completed')).toBe('Completed');
  });

  it('expireTokens expires every token issued so far; a new token works, and clearing it revives the old', async () => {
    const app = await sandbox();
    const before = await tokenFor(app);
    await faults(app, 'PUT', { expireTokens: true });
    const refused = await getAccount(app, before);
    expect(refused.statusCode).toBe(401);
    expect(refused.json().reasons[0].message).toMatch(/expired/);

    const after = await tokenFor(app);
    expect((await getAccount(app, after)).statusCode).toBe(404);
    expect((await faults(app, 'POST', { latencyMs: 1 })).faults).toEqual({ expireTokens: true, latencyMs: 1 });
    expect((await getAccount(app, after)).statusCode).toBe(404); // adding another fault does not expire it

    await faults(app, 'DELETE');
    expect((await getAccount(app, before)).statusCode).toBe(404);
  });

  it('takes faults at build time and from the environment', async () => {
    const app = await sandbox({ faults: { failNext: 1 } });
    const token = await tokenFor(app);
    expect((await getAccount(app, token)).statusCode).toBe(500);
    expect((await getAccount(app, token)).statusCode).toBe(404);
    await expect(buildZuoraSandbox({ ...CLIENT, faults: { errorRate: 3 } })).rejects.toMatchObject({ code: 'ZUORA_SANDBOX_FAULTS' });

    const env = { ZUORA_SANDBOX_LATENCY_MS: '25', ZUORA_SANDBOX_ERROR_RATE: '0.1', ZUORA_SANDBOX_RATE_LIMIT_PER_MINUTE: '600', ZUORA_SANDBOX_FAULT_PATHS: '/v1/usage' };
    expect(sandboxSettingsFromEnv(env)).toMatchObject({
      port: 8070,
      rateLimit: { requestsPerWindow: 600, windowMs: 60_000 },
      faults: { latencyMs: 25, errorRate: 0.1, paths: ['/v1/usage'] },
    });
    expect(sandboxSettingsFromEnv({}).rateLimit).toBeUndefined();
    expect(() => sandboxSettingsFromEnv({ ZUORA_SANDBOX_ERROR_RATE: 'often' })).toThrow(expect.objectContaining({ code: 'ZUORA_SANDBOX_ERROR_RATE' }));
  });
});

describe("Tally's ZuoraClient against a faulty sandbox", () => {
  it('refreshes an expired token once and succeeds; reports a 429 storm as retryable with its Retry-After', async () => {
    const app = await sandbox();
    const baseUrl = await app.listen({ port: 0, host: '127.0.0.1' });
    const client = new ZuoraClient({ baseUrl, ...CLIENT });
    const { accountNumber } = await client.createAccount({ name: 'Acme Corp', currency: 'USD', billCycleDay: 1, contact: { firstName: 'Ada', lastName: 'Lovelace' } }, 'acme');

    const fetchSpy = vi.spyOn(globalThis, 'fetch');
    const tokenRequests = () => fetchSpy.mock.calls.filter(([url]) => String(url).endsWith('/oauth/token')).length;
    await faults(app, 'PUT', { expireTokens: true });
    expect(await client.accountUsage(accountNumber)).toEqual([]);
    expect(tokenRequests()).toBe(1);
    expect(await client.accountUsage(accountNumber)).toEqual([]);
    expect(tokenRequests()).toBe(1);

    await faults(app, 'PUT', { rateLimitStorm: { requests: 1, retryAfterSeconds: 9 } });
    const storm = await client.accountUsage(accountNumber).catch((error: unknown) => error);
    expect(storm).toBeInstanceOf(ClientZuoraError);
    expect(storm).toMatchObject({ status: 429, retryable: true, retryAfterSeconds: 9, reasons: [{ code: 50000070 }] });

    await faults(app, 'PUT', { failNext: 1, errorStatus: 503 });
    await expect(client.accountUsage(accountNumber)).rejects.toMatchObject({ status: 503, retryable: true, retryAfterSeconds: undefined });
    expect(await client.accountUsage(accountNumber)).toEqual([]);
  });
});
