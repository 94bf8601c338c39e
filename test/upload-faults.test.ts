import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { addDays, billingDayOf } from '../core/billing-day.js';
import { buildZuoraSandbox } from '../zuora-sandbox/server.js';
import { eventually } from './support/eventually.js';
import { startTestTally, type TestTally } from './support/stack.js';

// The upload against a Zuora that misbehaves: server errors, a 429 storm, tokens that expire.
// Each story ends with Zuora holding exactly what Postgres says, once. This file runs its own
// sandbox, so its faults touch no other test file.

let tally: TestTally;
let sandbox: FastifyInstance;
const run = randomBytes(3).toString('hex');

async function faults(body: object): Promise<void> {
  await sandbox.inject({ method: 'PUT', url: '/sandbox/faults', payload: body });
}

async function zuoraTotals(): Promise<Record<string, string>> {
  const { usage } = (await sandbox.inject({ method: 'GET', url: '/sandbox/usage' })).json() as { usage: { uniqueKey: string; quantity: string }[] };
  return Object.fromEntries(usage.map((u) => [u.uniqueKey, u.quantity]));
}

async function postgresTotals(day: string): Promise<Record<string, string>> {
  const { rows } = await tally.db.query('SELECT unique_key, quantity FROM upload_ledger WHERE billing_day = $1', [day]);
  return Object.fromEntries(rows.map((r) => [r.unique_key, r.quantity]));
}

async function usageFor(day: string, n: number, amount: number): Promise<void> {
  await tally.db.query(
    `INSERT INTO usage_daily (internal_instance_id, billing_day, amount_type, total, event_count, key_checksum)
     VALUES ($1, $2, 'container-seconds', $3, 1, '0')
     ON CONFLICT (internal_instance_id, billing_day, amount_type) DO UPDATE SET total = EXCLUDED.total`,
    [`inst-${run}-${n}`, day, amount],
  );
  // As the aggregation that settles a day would: only closed days upload.
  await tally.db.query('INSERT INTO closed_days (billing_day) VALUES ($1) ON CONFLICT DO NOTHING', [day]);
}

const upload = async (day: string) =>
  (await tally.app.inject({ method: 'POST', url: '/admin/uploads?wait=true', headers: tally.adminAuth, payload: { day } })).json();

beforeAll(async () => {
  sandbox = await buildZuoraSandbox({ clientId: 'faults', clientSecret: 'faults-secret', importStepMs: 10 });
  await sandbox.listen({ host: '127.0.0.1', port: 0 });
  const { port } = sandbox.server.address() as { port: number };
  tally = await startTestTally({ ZUORA_BASE_URL: `http://127.0.0.1:${port}`, ZUORA_CLIENT_ID: 'faults', ZUORA_CLIENT_SECRET: 'faults-secret' });
  for (let n = 0; n < 3; n++) {
    await tally.app.inject({ method: 'POST', url: '/admin/organisations', headers: tally.adminAuth, payload: { id: `org-${run}-${n}`, name: `Org ${n}`, internalInstanceId: `inst-${run}-${n}` } });
  }
});
afterAll(async () => {
  await tally?.close();
  await sandbox?.close();
});

describe('uploading while Zuora misbehaves', () => {
  it('retries through server errors and ends with each record once', async () => {
    const day = addDays(billingDayOf(Date.now()), -3);
    for (let n = 0; n < 3; n++) await usageFor(day, n, 1000 + n);
    await faults({ failNext: 2, errorStatus: 503, paths: ['/v1/usage'] });
    const result = await upload(day);
    expect(result.result).toMatchObject({ records: 3, status: 'Completed' });
    const zuora = await zuoraTotals();
    const postgres = await postgresTotals(day);
    expect(Object.keys(postgres)).toHaveLength(3);
    for (const [key, quantity] of Object.entries(postgres)) expect(zuora[key]).toBe(quantity);
  });

  it('waits out a 429 storm for as long as Retry-After says', async () => {
    const day = addDays(billingDayOf(Date.now()), -4);
    for (let n = 0; n < 3; n++) await usageFor(day, n, 2000 + n);
    await faults({ rateLimitStorm: { requests: 2, retryAfterSeconds: 1 }, paths: ['/v1/usage'] });
    const started = Date.now();
    expect((await upload(day)).result).toMatchObject({ records: 3, status: 'Completed' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    const zuora = await zuoraTotals();
    for (const [key, quantity] of Object.entries(await postgresTotals(day))) expect(zuora[key]).toBe(quantity);
  });

  it('re-authenticates when the token expires between uploads, and a corrected day stays one record', async () => {
    const day = addDays(billingDayOf(Date.now()), -5);
    for (let n = 0; n < 3; n++) await usageFor(day, n, 3000 + n);
    await faults({});
    expect((await upload(day)).result).toMatchObject({ records: 3 });
    const before = Object.keys(await zuoraTotals()).length;
    await faults({ expireTokens: true });
    await usageFor(day, 1, 3500);
    expect((await upload(day)).result).toMatchObject({ records: 1, corrections: 1, status: 'Completed' });
    const zuora = await zuoraTotals();
    expect(Object.keys(zuora)).toHaveLength(before);
    for (const [key, quantity] of Object.entries(await postgresTotals(day))) expect(zuora[key]).toBe(quantity);
    expect(Object.values(zuora)).toContain('3500');
  });

  it('reconciles a day: every line agrees, then each kind of drift is found and counted', async () => {
    const day = addDays(billingDayOf(Date.now()), -6);
    await faults({});
    for (let n = 0; n < 2; n++) await usageFor(day, n, 4000 + n);
    await upload(day);
    const reconcile = async () =>
      (await tally.app.inject({ method: 'POST', url: '/admin/reconciliations?wait=true', headers: tally.adminAuth, payload: { day } })).json().result;
    expect(await reconcile()).toMatchObject({ lines: 2, differences: [] });

    // Late usage not uploaded yet, a new line never uploaded, and Zuora changed behind our back.
    await usageFor(day, 0, 4100);
    await usageFor(day, 2, 9);
    const token = (await sandbox.inject({
      method: 'POST', url: '/oauth/token',
      payload: 'client_id=faults&client_secret=faults-secret&grant_type=client_credentials',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    })).json().access_token;
    const { rows } = await tally.db.query('SELECT unique_key, zuora_account_number FROM upload_ledger WHERE billing_day = $1 AND org_id = $2', [day, `org-${run}-1`]);
    const edited = await sandbox.inject({
      method: 'POST', url: '/v1/object/usage', headers: { authorization: `Bearer ${token}` },
      payload: { AccountNumber: rows[0].zuora_account_number, UOM: 'CONTAINER_SECONDS', Quantity: '7', StartDateTime: `${day}T00:00:00`, UniqueKey: rows[0].unique_key, Description: 'edited by hand' },
    });
    expect(edited.json()).toMatchObject({ Success: true });

    const report = await reconcile();
    expect(report.lines).toBe(3);
    expect(report.differences.map((d: { kind: string }) => d.kind).sort()).toEqual(['ledger_behind', 'not_uploaded', 'quantity_differs']);
    const metrics = await tally.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/tally_reconciliation_differences\{kind="quantity_differs"\} 1/);
    expect(metrics.body).toMatch(/tally_reconciliation_differences\{kind="not_uploaded"\} 1/);
  });
});

/** Starts upload-<day> for three lines and returns once Zuora took its file, whose import then hangs in Processing. */
async function uploadWithHungImport(day: string, base: number) {
  for (let n = 0; n < 3; n++) await usageFor(day, n, base + n);
  await faults({ hangImports: true });
  const handle = await tally.temporal.workflow.start('uploadDayWorkflow', {
    workflowId: `upload-${day}`, taskQueue: tally.config.TEMPORAL_TASK_QUEUE, args: [day],
  });
  await eventually(async () => {
    const imports = await tally.db.query("SELECT count(*)::int AS n FROM upload_ledger_imports WHERE billing_day = $1 AND status = 'submitted'", [day]);
    expect(imports.rows[0].n).toBe(1);
  });
  return handle;
}

describe('a token that expires mid-upload', () => {
  it('is refreshed between the upload of the file and the polls of its import', async () => {
    const day = addDays(billingDayOf(Date.now()), -8);
    const handle = await uploadWithHungImport(day, 6000);
    // The file is in; every token issued so far expires now, and the import may finish.
    await faults({ expireTokens: true });
    expect(await handle.result()).toMatchObject({ records: 3, status: 'Completed' });
    const zuora = await zuoraTotals();
    for (const [key, quantity] of Object.entries(await postgresTotals(day))) expect(zuora[key]).toBe(quantity);
    await faults({});
  });
});

describe('a worker that dies during an import', () => {
  it('leaves the upload to the next worker, which finishes it with each record once', async () => {
    const { NativeConnection } = await import('@temporalio/worker');
    const { createActivities, activityDeps } = await import('../activities/index.js');
    const { createZuoraWorker } = await import('../workers/worker.js');
    const { zuoraTaskQueue } = await import('../core/task-queues.js');
    const day = addDays(billingDayOf(Date.now()), -7);
    // The import will hang in Processing while its poller's worker goes away.
    const handle = await uploadWithHungImport(day, 5000);
    // Kill the Zuora queue's worker mid-poll: its activity stops heartbeating.
    await tally.stopZuoraWorker();
    await faults({});
    // A new worker on the same queue takes over once the heartbeat times out.
    const connection = await NativeConnection.connect({ address: tally.config.TEMPORAL_ADDRESS });
    const replacement = await createZuoraWorker({
      connection,
      namespace: tally.config.TEMPORAL_NAMESPACE,
      taskQueue: zuoraTaskQueue(tally.config.TEMPORAL_TASK_QUEUE),
      activities: createActivities(activityDeps(tally.config, { db: tally.db, rawEvents: tally.rawEvents, zuora: tally.zuora })),
      maxPerSecond: 10,
      shutdownGraceTime: '1 second',
    });
    const running = replacement.run();
    try {
      expect(await handle.result()).toMatchObject({ records: 3, status: 'Completed' });
      const zuora = await zuoraTotals();
      for (const [key, quantity] of Object.entries(await postgresTotals(day))) expect(zuora[key]).toBe(quantity);
      const { usage } = (await sandbox.inject({ method: 'GET', url: '/sandbox/usage' })).json() as { usage: { uniqueKey: string }[] };
      const keys = usage.map((u) => u.uniqueKey);
      expect(new Set(keys).size).toBe(keys.length);
    } finally {
      replacement.shutdown();
      await running;
      await connection.close();
    }
  }, 120_000);
});


describe('invoices', () => {
  it('lists what a bill run posted for the uploaded usage, with exact amounts', async () => {
    const day = addDays(billingDayOf(Date.now()), -3); // uploaded by the first story: 1000, 1001, 1002 container-seconds
    const billRun = await sandbox.inject({ method: 'POST', url: '/sandbox/bill-run', payload: { from: day, to: day } });
    expect(billRun.json().invoices).toBe(3);
    const { rows } = await tally.db.query('SELECT zuora_account_number FROM organisations WHERE id = $1', [`org-${run}-1`]);
    const invoices = await tally.zuora.accountInvoices(rows[0].zuora_account_number);
    expect(invoices).toEqual([expect.objectContaining({ invoiceDate: day, amount: '0.01001', balance: '0.01001', status: 'Posted', invoiceNumber: expect.stringMatching(/^INV\d{8}$/) })]);
    const missing = await sandbox.inject({ method: 'GET', url: '/v1/transactions/invoices/accounts/A99999999', headers: { authorization: 'Bearer x' } });
    expect(missing.statusCode).toBe(401);
  });
});
