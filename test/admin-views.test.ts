import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usageUniqueKey } from '../activities/upload.js';
import { seedOrganisation, type SeededOrganisation } from './support/admin-fixture.js';
import { eventually } from './support/eventually.js';
import { startTestTally, type TestTally } from './support/stack.js';

// The operators' read endpoints on the real stack: organisations, one organisation's usage,
// uploads, restatements and invoices, failed and stuck workflows, reconciliation drift.

let tally: TestTally;
let acme: SeededOrganisation;
const run = randomBytes(3).toString('hex');
const ghostWorkflowId = `trial-ghost-${run}`;
const strandedWorkflowId = `stranded-${run}`;

beforeAll(async () => {
  tally = await startTestTally();
  acme = await seedOrganisation(tally, run, [16, 15, 14, 13]);
  // Two more organisations to search among; one already paid.
  for (const [id, name] of [[`globex-${run}`, `Globex 100%_ ${run}`], [`initech-${run}`, `Initech ${run}`]]) {
    const res = await tally.app.inject({ method: 'POST', url: '/admin/organisations', headers: tally.adminAuth, payload: { id, name, internalInstanceId: `${id}-instance` } });
    expect(res.statusCode).toBe(200);
  }
  await tally.db.query("UPDATE organisations SET status = 'paid' WHERE id = $1", [`initech-${run}`]);
}, 240_000);

afterAll(async () => {
  for (const id of [`acme-${run}`, `globex-${run}`, `initech-${run}`].map((o) => `trial-${o}`).concat(strandedWorkflowId)) {
    await tally?.temporal.workflow.getHandle(id).terminate('test over').catch(() => undefined);
  }
  await tally?.close();
});

const get = (url: string, headers = tally.adminAuth) => tally.app.inject({ method: 'GET', url, headers });

describe('organisations', () => {
  it('finds organisations by id, name or instance, in any case, and filters by status', async () => {
    const ids = async (query: string) => (await get(`/admin/organisations?${query}`)).json().organisations.map((o: { id: string }) => o.id);
    expect(await ids(`search=ACME-${run}`)).toEqual([acme.orgId]);
    expect(await ids(`search=${encodeURIComponent(`corp ${run}`)}`)).toEqual([acme.orgId]);
    expect(await ids(`search=${encodeURIComponent(`ACME-INSTANCE-${run}`)}`)).toEqual([acme.orgId]);
    // % and _ are characters to find, not patterns.
    expect(await ids(`search=${encodeURIComponent('100%_')}`)).toEqual([`globex-${run}`]);
    expect(await ids('search=%25')).toEqual([`globex-${run}`]);
    expect(await ids(`search=${run}&status=paid`)).toEqual([`initech-${run}`]);

    const row = (await get(`/admin/organisations?search=${acme.orgId}`)).json().organisations[0];
    expect(row).toMatchObject({ name: acme.name, internalInstanceId: acme.instanceId, status: 'trial', zuoraAccountNumber: expect.any(String) });
    expect(Date.parse(row.trialEndsAt)).toBeGreaterThan(Date.now());
  });

  it('pages, with the total of matches', async () => {
    const first = (await get(`/admin/organisations?search=${run}&limit=2`)).json();
    const second = (await get(`/admin/organisations?search=${run}&limit=2&offset=2`)).json();
    expect(first.total).toBe(3);
    expect(first.organisations.map((o: { id: string }) => o.id)).toEqual([`acme-${run}`, `globex-${run}`]);
    expect(second).toMatchObject({ total: 3, offset: 2, organisations: [{ id: `initech-${run}` }] });
    expect((await get('/admin/organisations?status=bankrupt')).statusCode).toBe(400);
  });

  it('shows one organisation with its trial as the workflow tells it', async () => {
    const res = await get(`/admin/organisations/${acme.orgId}`);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.organisation).toMatchObject({ id: acme.orgId, status: 'trial', trialStartedAt: expect.any(String) });
    expect(body.trialError).toBeNull();
    expect(body.trial).toMatchObject({
      workflowId: `trial-${acme.orgId}`, status: 'trial', enforced: false, nextNotice: { kind: expect.stringMatching(/^reminder-/) },
      temporalUrl: `${tally.config.TEMPORAL_UI_URL}/namespaces/${tally.config.TEMPORAL_NAMESPACE}/workflows/trial-${acme.orgId}`,
    });
    expect(body.trial.endsAt).toBe(body.organisation.trialEndsAt);
    expect(body).toMatchObject({ notifications: [], paymentMethods: [] });

    const missing = await get('/admin/organisations/nobody-here');
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ code: 'ORG_NOT_FOUND', message: expect.stringContaining('nobody-here') });
    for (const view of ['usage', 'uploads', 'restatements', 'invoices']) {
      const res = await get(`/admin/organisations/nobody-here/${view}`);
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ code: 'ORG_NOT_FOUND' });
    }
  });
});

describe("one organisation's records", () => {
  it('answers usage by day and amount type, exactly, with the live counters', async () => {
    const res = await get(`/admin/organisations/${acme.orgId}/usage?from=${acme.days[0]}&to=${acme.today}`);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ orgId: acme.orgId, from: acme.days[0], to: acme.today });
    const daily = new Map(body.daily.map((l: { day: string; amountType: string; total: string }) => [`${l.day}|${l.amountType}`, l.total]));
    expect(daily).toEqual(acme.totals);
    expect(body.daily[0]).toEqual({ day: acme.days[0], amountType: 'container-seconds', total: '5400', eventCount: 2 });
    expect(body.live).toContainEqual({ day: acme.today, amountType: 'container-seconds', total: acme.liveToday, eventCount: 1, updatedAt: expect.any(String) });
  });

  it('refuses a range that makes no sense, naming the field', async () => {
    const reversed = await get(`/admin/organisations/${acme.orgId}/usage?from=2026-03-02&to=2026-03-01`);
    expect(reversed.statusCode).toBe(400);
    expect(reversed.json()).toMatchObject({ code: 'INVALID_RANGE', field: 'from' });
    expect((await get(`/admin/organisations/${acme.orgId}/usage?from=2026-02-30`)).json()).toMatchObject({ code: 'INVALID_DAY', field: 'from' });
    expect((await get(`/admin/organisations/${acme.orgId}/usage?from=2020-01-01&to=2026-01-01`)).json()).toMatchObject({ code: 'RANGE_TOO_LONG' });
  });

  it("lists the organisation's uploads with each line's history and import", async () => {
    const body = (await get(`/admin/organisations/${acme.orgId}/uploads?from=${acme.days[0]}&to=${acme.today}`)).json();
    expect(body.uploads).toHaveLength(2);
    const line = body.uploads.find((u: { amountType: string }) => u.amountType === 'container-seconds');
    expect(line).toMatchObject({
      uniqueKey: usageUniqueKey(acme.orgId, acme.uploadedDay, 'container-seconds'), day: acme.uploadedDay, unitOfMeasure: 'CONTAINER_SECONDS',
      quantity: acme.uploaded.get(`${acme.uploadedDay}|container-seconds`), status: 'completed', importStatus: 'completed',
      history: [{ kind: 'initial', quantity: acme.uploaded.get(`${acme.uploadedDay}|container-seconds`), previousQuantity: null, importId: line.importId, recordedAt: expect.any(String) }],
    });
  });

  it("lists restatements of the organisation's days, and no one else's", async () => {
    const insert = `INSERT INTO usage_restatements (internal_instance_id, billing_day, amount_type, previous_total, new_total, previous_event_count, new_event_count, reason, uploaded_before, workflow_id)
                    VALUES ($1, $2, 'node-seconds', '60', '61', 1, 2, 'backfill', true, $3)`;
    await tally.db.query(insert, [acme.instanceId, acme.days[0], `backfill-${run}`]);
    await tally.db.query(insert, [`globex-${run}-instance`, acme.days[0], `backfill-${run}`]);
    const body = (await get(`/admin/organisations/${acme.orgId}/restatements?from=${acme.days[0]}&to=${acme.days[0]}`)).json();
    expect(body.restatements).toEqual([{
      day: acme.days[0], amountType: 'node-seconds', previousTotal: '60', newTotal: '61', previousEventCount: 1, newEventCount: 2,
      reason: 'backfill', uploadedBefore: true, workflowId: `backfill-${run}`, restatedAt: expect.any(String),
    }]);
  });

  it("lists the organisation's invoices from Zuora, amounts as Zuora's decimal strings", async () => {
    const body = (await get(`/admin/organisations/${acme.orgId}/invoices`)).json();
    // Uploaded: 16200 container-seconds × 0.00001 and 240 node-seconds × 0.00002.
    expect(acme.invoiceAmount).toBe('0.1668');
    // (Other test files' bill runs may invoice the same account again: look for this one.)
    expect(body.invoices).toContainEqual({
      id: expect.any(String), invoiceNumber: expect.stringMatching(/^INV/), invoiceDate: acme.uploadedDay, dueDate: acme.uploadedDay,
      amount: acme.invoiceAmount, balance: acme.invoiceAmount, status: 'Posted',
    });
    expect((await get(`/admin/organisations/globex-${run}/invoices`)).json().invoices).toEqual([]);
  });
});

describe('operations', () => {
  it('lists a workflow that failed, with why and a link to that run', async () => {
    // A trial for an organisation that was never registered fails at its first activity.
    const handle = await tally.temporal.workflow.start('trialWorkflow', {
      workflowId: ghostWorkflowId, taskQueue: tally.config.TEMPORAL_TASK_QUEUE, args: [{ orgId: `ghost-${run}`, trialDays: 30, reminderDaysBefore: [] }],
    });
    await expect(handle.result()).rejects.toThrow();
    const failed = await eventually(async () => {
      const body = (await get('/admin/workflows/failed?days=1')).json();
      const found = body.workflows.find((w: { workflowId: string }) => w.workflowId === ghostWorkflowId);
      expect(found).toBeDefined();
      return found;
    });
    expect(failed).toMatchObject({
      type: 'trialWorkflow', status: 'FAILED', runId: handle.firstExecutionRunId, taskQueue: tally.config.TEMPORAL_TASK_QUEUE,
      reason: expect.stringContaining(`organisation ghost-${run} is not registered`),
      temporalUrl: `${tally.config.TEMPORAL_UI_URL}/namespaces/${tally.config.TEMPORAL_NAMESPACE}/workflows/${ghostWorkflowId}/${handle.firstExecutionRunId}/history`,
    });
  });

  it('lists a workflow stuck running, leaving out trials and the ingest drainer', async () => {
    // No worker knows this workflow type: its first task fails and is retried for ever, a run that never ends.
    await tally.temporal.workflow.start('workflowFromAnOlderRelease', { workflowId: strandedWorkflowId, taskQueue: tally.config.TEMPORAL_TASK_QUEUE, args: [] });
    const stuck = await eventually(async () => {
      const body = (await get('/admin/workflows/stuck?olderThanMinutes=0')).json();
      expect(body.workflows.map((w: { workflowId: string }) => w.workflowId)).toContain(strandedWorkflowId);
      return body.workflows as { workflowId: string; type: string }[];
    });
    expect(stuck.filter((w) => w.type === 'trialWorkflow' || w.type === 'drainIngestOutboxWorkflow')).toEqual([]);
    const later = (await get('/admin/workflows/stuck?olderThanMinutes=60')).json();
    expect(later.workflows.map((w: { workflowId: string }) => w.workflowId)).not.toContain(strandedWorkflowId);
    await tally.temporal.workflow.getHandle(strandedWorkflowId).terminate('seen stuck');
  });

  it('shows reconciliation drift: the latest run of each day and its differences', async () => {
    // A second run of the same day: the drift view shows the latest.
    await tally.app.inject({ method: 'POST', url: '/admin/reconciliations?wait=true', headers: tally.adminAuth, payload: { day: acme.uploadedDay } });
    const body = (await get(`/admin/reconciliations?from=${acme.days[0]}&to=${acme.today}`)).json();
    expect(body.days).toEqual([{ day: acme.uploadedDay, runId: expect.any(Number), runs: 2, lines: 2, differences: 1, finishedAt: expect.any(String) }]);
    expect(body.differences).toEqual([{
      day: acme.uploadedDay, runId: body.days[0].runId, uniqueKey: usageUniqueKey(acme.orgId, acme.uploadedDay, 'container-seconds'),
      kind: 'ledger_behind', orgId: acme.orgId, zuoraAccountNumber: expect.any(String), amountType: 'container-seconds',
      usage: acme.totals.get(`${acme.uploadedDay}|container-seconds`), ledger: acme.uploaded.get(`${acme.uploadedDay}|container-seconds`),
      zuora: acme.uploaded.get(`${acme.uploadedDay}|container-seconds`),
    }]);
    expect(body.truncated).toBe(false);
  });
});

describe('the admin surface', () => {
  it('keeps every read behind the operator token, and documents each in /openapi.json', async () => {
    for (const url of ['/admin/organisations', `/admin/organisations/${acme.orgId}`, `/admin/organisations/${acme.orgId}/usage`, '/admin/workflows/failed', '/admin/reconciliations']) {
      expect((await get(url, {} as typeof tally.adminAuth)).statusCode, url).toBe(401);
    }
    const paths = Object.keys((await tally.app.inject({ method: 'GET', url: '/openapi.json' })).json().paths);
    expect(paths).toEqual(expect.arrayContaining([
      '/admin/organisations/{orgId}', '/admin/organisations/{orgId}/usage', '/admin/organisations/{orgId}/uploads',
      '/admin/organisations/{orgId}/restatements', '/admin/organisations/{orgId}/invoices',
      '/admin/workflows/failed', '/admin/workflows/stuck', '/admin/reconciliations',
    ]));
  });

  it('serves the admin UI and its libraries from node_modules without a token, and nothing else of those packages', async () => {
    const page = await tally.app.inject({ method: 'GET', url: '/admin/ui/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect((await tally.app.inject({ method: 'GET', url: '/admin/ui' })).statusCode).toBe(301);
    for (const asset of ['vendor/alpine/module.esm.js', 'vendor/pico/pico.min.css', 'vendor/chart/chart.umd.min.js', 'js/session.js', 'ui.css']) {
      expect((await tally.app.inject({ method: 'GET', url: `/admin/ui/${asset}` })).statusCode, asset).toBe(200);
    }
    expect((await tally.app.inject({ method: 'GET', url: '/admin/ui/vendor/chart/chart.cjs' })).statusCode).toBe(404);
    expect((await tally.app.inject({ method: 'GET', url: '/admin/ui/vendor/chart/%2e%2e/package.json' })).statusCode).toBe(404);
  });
});
