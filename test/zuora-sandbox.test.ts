import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildZuoraSandbox, type ZuoraSandboxOptions } from '../zuora-sandbox/server.js';

const CLIENT = { clientId: 'tally-test', clientSecret: 'tally-test-secret' };
const HEADER = 'ACCOUNT_ID,UOM,QTY,STARTDATE,ENDDATE,SUBSCRIPTION_ID,CHARGE_ID,DESCRIPTION,UNIQUE_KEY';

const dataDir = mkdtempSync(path.join(tmpdir(), 'zuora-sandbox-test-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const apps: FastifyInstance[] = [];
async function sandbox(opts: Partial<ZuoraSandboxOptions> = {}): Promise<FastifyInstance> {
  const app = await buildZuoraSandbox({ ...CLIENT, importStepMs: 5, ...opts });
  apps.push(app);
  return app;
}
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function tokenFor(app: FastifyInstance): Promise<string> {
  const res = await app.inject({
    method: 'POST',
    url: '/oauth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ client_id: CLIENT.clientId, client_secret: CLIENT.clientSecret, grant_type: 'client_credentials' }).toString(),
  });
  expect(res.statusCode).toBe(200);
  return res.json().access_token as string;
}

/** A real multipart/form-data body, encoded by the platform's own FormData. */
async function multipart(csv: string, fileName = 'usage.csv'): Promise<{ payload: Buffer; headers: Record<string, string> }> {
  const form = new FormData();
  form.append('file', new Blob([csv], { type: 'text/csv' }), fileName);
  const request = new Request('http://sandbox.local/v1/usage', { method: 'POST', body: form });
  return { payload: Buffer.from(await request.arrayBuffer()), headers: { 'content-type': request.headers.get('content-type')! } };
}

function csvOf(...rows: string[]): string {
  return [HEADER, ...rows].join('\r\n') + '\r\n';
}

/** A client of one sandbox with one token, speaking Zuora's API the way Tally's client does. */
function zuora(app: FastifyInstance, token: string) {
  const auth = { authorization: `Bearer ${token}` };
  return {
    createAccount: (body: unknown, idempotencyKey?: string) =>
      app.inject({ method: 'POST', url: '/v1/accounts', headers: { ...auth, ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) }, payload: body as object }),
    getAccount: (key: string) => app.inject({ method: 'GET', url: `/v1/accounts/${key}`, headers: auth }),
    upload: async (csv: string, opts: { fileName?: string; idempotencyKey?: string } = {}) => {
      const { payload, headers } = await multipart(csv, opts.fileName);
      return app.inject({
        method: 'POST',
        url: '/v1/usage',
        headers: { ...auth, ...headers, ...(opts.idempotencyKey ? { 'idempotency-key': opts.idempotencyKey } : {}) },
        payload,
      });
    },
    status: (statusPath: string) => app.inject({ method: 'GET', url: statusPath, headers: auth }),
    usageOf: (key: string) => app.inject({ method: 'GET', url: `/v1/usage/accounts/${key}`, headers: auth }),
    createUsage: (body: unknown) => app.inject({ method: 'POST', url: '/v1/object/usage', headers: auth, payload: body as object }),
  };
}
type Zuora = ReturnType<typeof zuora>;

const ACME = { name: 'Acme Corp', currency: 'USD', billCycleDay: 1, billToContact: { firstName: 'Ada', lastName: 'Lovelace', workEmail: 'ada@acme.test' } };

async function newAccount(client: Zuora, body: object = ACME): Promise<{ accountId: string; accountNumber: string }> {
  const res = await client.createAccount(body);
  expect(res.json()).toMatchObject({ success: true });
  return res.json();
}

/** Uploads a file and polls its status the way a client must, returning every status seen. */
async function importAndWait(client: Zuora, csv: string): Promise<{ statuses: string[]; message?: string }> {
  const upload = await client.upload(csv);
  expect(upload.statusCode).toBe(200);
  const { checkImportStatus } = upload.json();
  const statuses: string[] = [];
  for (let attempt = 0; attempt < 200; attempt++) {
    const body = (await client.status(checkImportStatus)).json();
    if (statuses.at(-1) !== body.importStatus) statuses.push(body.importStatus);
    if (body.importStatus === 'Completed' || body.importStatus === 'Failed') return { statuses, message: body.message };
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error(`import did not finish: ${statuses.join(' → ')}`);
}

async function usageRecords(app: FastifyInstance) {
  return (await app.inject({ method: 'GET', url: '/sandbox/usage' })).json().usage as Array<Record<string, unknown>>;
}

function expectZuoraFailure(res: LightMyRequestResponse, status: number, messagePart: string | RegExp) {
  expect(res.statusCode).toBe(status);
  const body = res.json();
  expect(body.success).toBe(false);
  expect(body.reasons[0].code).toEqual(expect.any(Number));
  expect(body.reasons[0].message).toMatch(messagePart);
}

describe('OAuth tokens', () => {
  it('issues a bearer token for the right client credentials and refuses the wrong ones', async () => {
    const app = await sandbox();
    const form = (fields: Record<string, string>) => ({
      method: 'POST' as const,
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams(fields).toString(),
    });

    const ok = await app.inject(form({ client_id: 'tally-test', client_secret: 'tally-test-secret', grant_type: 'client_credentials' }));
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ access_token: expect.stringMatching(/^[0-9a-f]{32}$/), token_type: 'bearer', expires_in: 3599, scope: expect.any(String), jti: expect.any(String) });

    expectZuoraFailure(await app.inject(form({ client_id: 'tally-test', client_secret: 'nope', grant_type: 'client_credentials' })), 401, /client_secret/);
    expectZuoraFailure(await app.inject(form({ client_id: 'tally-test', client_secret: 'tally-test-secret', grant_type: 'password' })), 400, /grant_type/);
  });

  it('answers 401 in Zuora shape to a missing, unknown or expired token on /v1 routes', async () => {
    const app = await sandbox();
    expectZuoraFailure(await app.inject({ method: 'GET', url: '/v1/accounts/A00000001' }), 401, /Authentication error/);
    expectZuoraFailure(await app.inject({ method: 'GET', url: '/v1/accounts/A00000001', headers: { authorization: 'Bearer 0123' } }), 401, /not valid/);

    const shortLived = await sandbox({ tokenTtlSeconds: 0 });
    const expired = await tokenFor(shortLived);
    const res = await shortLived.inject({ method: 'GET', url: '/v1/accounts/A00000001', headers: { authorization: `Bearer ${expired}` } });
    expectZuoraFailure(res, 401, /expired/);
    expect(res.headers['www-authenticate']).toContain('Bearer');
  });
});

describe('accounts', () => {
  let app: FastifyInstance;
  let client: Zuora;
  beforeEach(async () => {
    app = await sandbox();
    client = zuora(app, await tokenFor(app));
  });

  it('creates an account and finds it by number and by id', async () => {
    const created = await client.createAccount(ACME);
    expect(created.statusCode).toBe(200);
    const { accountId, accountNumber } = created.json();
    expect(created.json()).toMatchObject({ success: true, accountNumber: 'A00000001', accountId: expect.stringMatching(/^[0-9a-f]{32}$/) });

    for (const key of [accountNumber, accountId]) {
      const res = await client.getAccount(key);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({
        success: true,
        basicInfo: { id: accountId, accountNumber, name: 'Acme Corp', status: 'Active', currency: 'USD', billCycleDay: 1 },
        billToContact: { firstName: 'Ada', lastName: 'Lovelace', workEmail: 'ada@acme.test' },
      });
    }
    expect((await newAccount(client)).accountNumber).toBe('A00000002');
  });

  it('rejects bad fields with HTTP 200 and success:false naming the field, as Zuora does', async () => {
    const { name: _name, ...noName } = ACME;
    expectZuoraFailure(await client.createAccount(noName), 200, /'name'/);
    expectZuoraFailure(await client.createAccount({ ...ACME, billCycleDay: 32 }), 200, /'billCycleDay'/);
    expectZuoraFailure(await client.createAccount({ ...ACME, billToContact: { lastName: 'Lovelace' } }), 200, /'billToContact.firstName'/);
    expect((await app.inject({ method: 'GET', url: '/sandbox/health' })).json().accounts).toBe(0);
  });

  it('answers 404 in Zuora shape for an unknown account', async () => {
    expectZuoraFailure(await client.getAccount('A09999999'), 404, /A09999999/);
  });
});

describe('usage import', () => {
  let app: FastifyInstance;
  let client: Zuora;
  let account: string;
  beforeEach(async () => {
    app = await sandbox();
    client = zuora(app, await tokenFor(app));
    account = (await newAccount(client)).accountNumber;
  });

  const day1 = (qty: string) => `${account},CONTAINER_SECONDS,${qty},01/15/2024,01/15/2024,,,container-seconds on 2024-01-15,tally-k1`;
  const day2 = () => `${account},NODE_SECONDS,3600.5,01/15/2024,01/15/2024,,,node-seconds on 2024-01-15,tally-k2`;

  it('completes asynchronously and its records appear under the account, quantities exact', async () => {
    const upload = await client.upload(csvOf(day1('86400000000'), day2()));
    expect(upload.json()).toEqual({ success: true, checkImportStatus: expect.stringMatching(/^\/v1\/usage\/[0-9a-f]{32}\/status$/), size: expect.any(Number) });
    expect((await client.status(upload.json().checkImportStatus)).json()).toEqual({ success: true, importStatus: 'Pending' });

    let status = '';
    for (let i = 0; i < 200 && status !== 'Completed'; i++) {
      status = (await client.status(upload.json().checkImportStatus)).json().importStatus;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect(status).toBe('Completed');

    const usage = (await client.usageOf(account)).json();
    expect(usage.success).toBe(true);
    expect(usage.usage).toHaveLength(2);
    expect(usage.usage).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          accountNumber: account,
          accountName: 'Acme Corp',
          unitOfMeasure: 'CONTAINER_SECONDS',
          quantity: '86400000000',
          startDateTime: '2024-01-15 00:00:00',
          sourceName: 'Import',
          status: 'Pending',
          uniqueKey: 'tally-k1',
          description: 'container-seconds on 2024-01-15',
        }),
        expect.objectContaining({ unitOfMeasure: 'NODE_SECONDS', quantity: '3600.5', uniqueKey: 'tally-k2' }),
      ]),
    );
  });

  it('goes Pending → Processing → Completed', async () => {
    const { statuses } = await importAndWait(client, csvOf(day1('10')));
    expect(statuses[0]).toBe('Pending');
    expect(statuses.at(-1)).toBe('Completed');
    expect(statuses).toContain('Processing');
  });

  it('ignores a re-upload of the identical file and updates a record whose quantity changed', async () => {
    await importAndWait(client, csvOf(day1('10'), day2()));
    const [first] = (await usageRecords(app)).filter((r) => r.uniqueKey === 'tally-k1');

    expect((await importAndWait(client, csvOf(day1('10'), day2()))).statuses.at(-1)).toBe('Completed');
    expect(await usageRecords(app)).toHaveLength(2);

    expect((await importAndWait(client, csvOf(day1('12'), day2()))).statuses.at(-1)).toBe('Completed');
    const records = await usageRecords(app);
    expect(records).toHaveLength(2);
    expect(records.find((r) => r.uniqueKey === 'tally-k1')).toMatchObject({ id: first!.id, quantity: '12' });

    const imports = (await app.inject({ method: 'GET', url: '/sandbox/imports' })).json().imports;
    expect(imports.map((i: Record<string, unknown>) => [i.status, i.rowCount, i.added, i.updated, i.ignored])).toEqual([
      ['Completed', 2, 2, 0, 0],
      ['Completed', 2, 0, 0, 2],
      ['Completed', 2, 0, 1, 1],
    ]);
  });

  it('fails the whole file on one bad row, naming the row and the field, and stores none of it', async () => {
    const bad = await importAndWait(client, csvOf(day1('10'), `${account},NODE_SECONDS,-5,01/15/2024,,,,,tally-k2`));
    expect(bad.statuses.at(-1)).toBe('Failed');
    expect(bad.message).toMatch(/Row 2 \(line 3\), QTY/);
    expect(await usageRecords(app)).toHaveLength(0);

    const cases: Array<[string, RegExp]> = [
      [`A09999999,NODE_SECONDS,5,01/15/2024,,,,,`, /Row 1 \(line 2\), ACCOUNT_ID/],
      [`${account},NODE_SECONDS,5,2024-01-15,,,,,`, /Row 1 \(line 2\), STARTDATE/],
      [`${account},NODE_SECONDS,five,01/15/2024,,,,,`, /Row 1 \(line 2\), QTY/],
      [`${account},NODE_SECONDS,5,02/30/2024,,,,,`, /Row 1 \(line 2\), STARTDATE/],
    ];
    for (const [row, message] of cases) {
      const result = await importAndWait(client, csvOf(row));
      expect(result.statuses.at(-1)).toBe('Failed');
      expect(result.message).toMatch(message);
    }
    const unknownColumn = await importAndWait(client, `${HEADER},REGION\r\n${day1('10')},eu\r\n`);
    expect(unknownColumn.message).toMatch(/unknown column 'REGION'/);
    expect(await usageRecords(app)).toHaveLength(0);
  });

  it('rejects a row that moves an existing UNIQUE_KEY to another account', async () => {
    const other = (await newAccount(client, { ...ACME, name: 'Other Inc' })).accountNumber;
    await importAndWait(client, csvOf(day1('10')));
    const moved = await importAndWait(client, csvOf(day2(), `${other},CONTAINER_SECONDS,10,01/15/2024,,,,,tally-k1`));
    expect(moved.statuses.at(-1)).toBe('Failed');
    expect(moved.message).toMatch(/Row 2 \(line 3\), UNIQUE_KEY/);
    expect(await usageRecords(app)).toHaveLength(1);
  });

  it('always adds records without a UNIQUE_KEY', async () => {
    const unkeyed = `${account},SAMPLES,7,01/15/2024,,,,,`;
    await importAndWait(client, csvOf(unkeyed));
    await importAndWait(client, csvOf(unkeyed));
    expect(await usageRecords(app)).toHaveLength(2);
  });

  it('refuses a file over 4 MB with 413 in Zuora shape', async () => {
    const big = csvOf(...Array.from({ length: 110_000 }, (_, i) => `${account},SAMPLES,${i},01/15/2024,,,,,`));
    expect(Buffer.byteLength(big)).toBeGreaterThan(4 * 1024 * 1024);
    expectZuoraFailure(await client.upload(big), 413, /4 MB/);
  });
});

describe('single usage records (CRUD)', () => {
  it('applies the same UniqueKey rules and answers in the CRUD shape', async () => {
    const app = await sandbox();
    const client = zuora(app, await tokenFor(app));
    const { accountId, accountNumber } = await newAccount(client);
    const record = { AccountNumber: accountNumber, UOM: 'SAMPLES', Quantity: '86400000000', StartDateTime: '2024-01-15T00:00:00Z', UniqueKey: 'crud-1' };

    const created = await client.createUsage(record);
    expect(created.statusCode).toBe(200);
    expect(created.json()).toEqual({ Success: true, Id: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect((await client.createUsage(record)).json().Id).toBe(created.json().Id);
    expect((await client.createUsage({ ...record, AccountNumber: undefined, AccountId: accountId, Quantity: 5 })).json().Id).toBe(created.json().Id);

    const records = await usageRecords(app);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ quantity: '5', sourceName: 'API', startDateTime: '2024-01-15 00:00:00' });

    const unknown = await client.createUsage({ ...record, AccountNumber: 'A09999999' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json()).toEqual({ Success: false, Errors: [{ Code: 'INVALID_VALUE', Message: expect.stringContaining('A09999999') }] });
    const missing = await client.createUsage({ ...record, UOM: undefined });
    expect(missing.json().Errors[0]).toEqual({ Code: 'MISSING_REQUIRED_VALUE', Message: expect.stringContaining('UOM') });
  });
});

describe('Idempotency-Key', () => {
  it('replays the first answer for the same request and answers 422 to a different one', async () => {
    const app = await sandbox();
    const client = zuora(app, await tokenFor(app));

    const first = await client.createAccount(ACME, 'create-acme');
    const retry = await client.createAccount({ ...ACME, billToContact: { ...ACME.billToContact } }, 'create-acme');
    expect(retry.statusCode).toBe(200);
    expect(retry.json()).toEqual(first.json());
    expect((await app.inject({ method: 'GET', url: '/sandbox/health' })).json().accounts).toBe(1);

    expectZuoraFailure(await client.createAccount({ ...ACME, name: 'Someone Else' }, 'create-acme'), 422, /create-acme/);

    const csv = csvOf(`${first.json().accountNumber},SAMPLES,1,01/15/2024,,,,,k`);
    const upload = await client.upload(csv, { idempotencyKey: 'upload-1' });
    const again = await client.upload(csv, { idempotencyKey: 'upload-1' });
    expect(again.json()).toEqual(upload.json());
    expect((await app.inject({ method: 'GET', url: '/sandbox/imports' })).json().imports).toHaveLength(1);
  });
});

describe('persistence', () => {
  it('keeps accounts, usage and imports across a rebuild with the same data file, and resumes unfinished imports', async () => {
    const dataFile = path.join(dataDir, 'persist', 'zuora.json');
    const before = await sandbox({ dataFile });
    const client = zuora(before, await tokenFor(before));
    const { accountNumber } = await newAccount(client);
    await importAndWait(client, csvOf(`${accountNumber},SAMPLES,86400000000,01/15/2024,,,,,p-1`));
    await client.createAccount(ACME, 'persisted-key');
    await before.close();

    // A slow sandbox takes an upload, then stops before working on it.
    const slow = await sandbox({ dataFile, importStepMs: 60_000 });
    const slowClient = zuora(slow, await tokenFor(slow));
    const pending = (await slowClient.upload(csvOf(`${accountNumber},SAMPLES,2,01/16/2024,,,,,p-2`))).json().checkImportStatus;
    await slow.close();

    const after = await sandbox({ dataFile });
    await after.ready();
    const afterClient = zuora(after, await tokenFor(after));
    expect((await afterClient.getAccount(accountNumber)).json().basicInfo.name).toBe('Acme Corp');
    expect((await afterClient.createAccount(ACME, 'persisted-key')).json().accountNumber).toBe('A00000002');

    let status = '';
    for (let i = 0; i < 200 && status !== 'Completed'; i++) {
      status = (await afterClient.status(pending)).json().importStatus;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect(status).toBe('Completed');
    const usage = (await afterClient.usageOf(accountNumber)).json().usage;
    expect(usage.map((u: Record<string, unknown>) => [u.uniqueKey, u.quantity])).toEqual([
      ['p-2', '2'],
      ['p-1', '86400000000'],
    ]);
    const imports = (await after.inject({ method: 'GET', url: '/sandbox/imports' })).json().imports;
    expect(imports.map((i: Record<string, unknown>) => i.status)).toEqual(['Completed', 'Completed']);
  });

  it('refuses to start on a data file it cannot read, rather than start over empty', async () => {
    const dataFile = path.join(dataDir, 'corrupt.json');
    writeFileSync(dataFile, '{"version": 1, "accounts": [');
    await expect(buildZuoraSandbox({ ...CLIENT, dataFile })).rejects.toMatchObject({ code: 'ZUORA_SANDBOX_DATA_FILE' });
  });
});
