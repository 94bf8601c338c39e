import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedOrganisation, type SeededOrganisation } from './support/admin-fixture.js';
import { startTestTally, type TestTally } from './support/stack.js';

// The admin UI in a real browser (Debian's chromium through playwright-core) against the real
// stack: sign in, find an organisation, read its chart, start workflows, see failures and drift.
// UPDATE_SCREENSHOTS=1 writes docs/screenshots/*.png from the pages as the tests leave them.

let tally: TestTally;
let acme: SeededOrganisation;
let browser: Browser;
let page: Page;
let ui: string;
const run = randomBytes(3).toString('hex');
const ghostWorkflowId = `trial-ghost-${run}`;
const pageErrors: string[] = [];

const screenshotDir = path.join(import.meta.dirname, '..', 'docs', 'screenshots');
async function screenshot(name: string): Promise<void> {
  if (process.env.UPDATE_SCREENSHOTS !== '1') return;
  fs.mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  tally = await startTestTally();
  acme = await seedOrganisation(tally, run, [19, 18, 17]);
  for (const [id, name] of [[`globex-${run}`, 'Globex Corporation'], [`initech-${run}`, 'Initech'], [`umbrella-${run}`, 'Umbrella Health']]) {
    const res = await tally.app.inject({ method: 'POST', url: '/admin/organisations', headers: tally.adminAuth, payload: { id, name, internalInstanceId: `${id}-instance` } });
    expect(res.statusCode).toBe(200);
  }
  await tally.db.query("UPDATE organisations SET status = 'paid' WHERE id = $1", [`initech-${run}`]);
  // A workflow made to fail: a trial for an organisation that was never registered.
  const ghost = await tally.temporal.workflow.start('trialWorkflow', {
    workflowId: ghostWorkflowId, taskQueue: tally.config.TEMPORAL_TASK_QUEUE, args: [{ orgId: `ghost-${run}`, trialDays: 30, reminderDaysBefore: [] }],
  });
  await expect(ghost.result()).rejects.toThrow();

  const address = await tally.app.listen({ port: 0, host: '127.0.0.1' });
  ui = `${address}/admin/ui/`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
}, 240_000);

afterAll(async () => {
  await browser?.close();
  for (const id of ['acme', 'globex', 'initech', 'umbrella']) {
    await tally?.temporal.workflow.getHandle(`trial-${id}-${run}`).terminate('test over').catch(() => undefined);
  }
  await tally?.close();
});

describe('the admin UI', () => {
  it('refuses a wrong token, and signs in with the right one', async () => {
    await page.goto(ui);
    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('That token was refused');
    expect(await page.evaluate(() => sessionStorage.getItem('tally.adminToken'))).toBeNull();
    await page.getByLabel('Admin token').fill('');
    await screenshot('login');

    await page.getByLabel('Admin token').fill(tally.config.ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/organisations\.html/);
    await page.waitForSelector('body[data-ready]');
    await page.getByRole('link', { name: `globex-${run}` }).waitFor();
    await screenshot('organisations');
  });

  it('finds the organisation by part of its name and opens it', async () => {
    await page.getByLabel('Search id, name or instance').fill(`corp ${run}`);
    await expect.poll(() => page.locator('tbody tr:has(a)').count()).toBe(1);
    await page.getByRole('link', { name: acme.orgId }).click();
    await page.waitForURL(/organisation\.html\?id=/);
    await page.waitForSelector('body[data-ready]');
    await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe(acme.name);
  });

  it("draws the usage chart with the organisation's aggregated totals", async () => {
    await page.waitForFunction(() => (window as unknown as { Chart: { getChart(c: Element | null): { data: { datasets: unknown[] } } | undefined } })
      .Chart.getChart(document.getElementById('usage-chart'))?.data.datasets.length);
    const drawn = await page.evaluate(() => {
      const chart = (window as unknown as { Chart: { getChart(c: Element | null): { data: { labels: string[]; datasets: { label: string; data: number[] }[] } } } })
        .Chart.getChart(document.getElementById('usage-chart'));
      return { labels: chart.data.labels, datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })) };
    });
    expect(drawn.labels).toHaveLength(30);
    expect(drawn.labels.at(-1)).toBe(acme.today);
    expect(drawn.datasets.map((d) => d.label)).toEqual(['container-seconds', 'node-seconds']);
    for (const { label, data } of drawn.datasets) {
      drawn.labels.forEach((day, i) => {
        expect(data[i], `${day} ${label}`).toBe(Number(acme.totals.get(`${day}|${label}`) ?? 0));
      });
    }
    // The exact figures, as operators read them, in the table under the chart.
    await page.getByText('Aggregated usage as a table').click();
    expect(await page.locator('#usage-table tbody tr').first().innerText()).toMatch(new RegExp(`${acme.days[0]}\\s+container-seconds\\s+5,400\\s+2`));
    expect(await page.locator('#live-table tbody').innerText()).toMatch(new RegExp(`${acme.today}\\s+container-seconds\\s+${acme.liveToday}`));
    await expect.poll(() => page.locator('#uploads-table tbody tr:has(code)').count()).toBe(2);
    await expect.poll(() => page.locator('#invoices-table').innerText()).toContain(acme.invoiceAmount);
  });

  it('extends the trial, showing the workflow and its link into the Temporal UI', async () => {
    await page.getByRole('listitem').filter({ hasText: 'Trial started' }).waitFor();
    await page.getByLabel('Extend by days').fill('10');
    await page.getByRole('button', { name: 'Extend trial' }).click();
    const result = page.locator('.started', { hasText: 'Extended by 10 days' });
    await result.waitFor();
    expect(await result.locator('code').textContent()).toBe(`trial-${acme.orgId}`);
    expect(await result.getByRole('link').getAttribute('href')).toBe(`${tally.config.TEMPORAL_UI_URL}/namespaces/${tally.config.TEMPORAL_NAMESPACE}/workflows/trial-${acme.orgId}`);
    await page.getByRole('listitem').filter({ hasText: 'Extended by 10 days' }).waitFor();
    const trial = (await tally.app.inject({ method: 'GET', url: `/admin/trials/${acme.orgId}`, headers: tally.adminAuth })).json().trial;
    expect(trial.extensions).toEqual([{ days: 10, by: 'admin-ui', at: expect.any(String) }]);
    await screenshot('organisation');
  });

  it('starts an aggregation from its button and links to the workflow in the Temporal UI', async () => {
    await page.getByRole('link', { name: 'Operations' }).click();
    await page.waitForURL(/operations\.html/);
    await page.waitForSelector('body[data-ready]');
    await page.getByLabel('Billing day (UTC)').fill(acme.days[0]!);
    await page.getByRole('button', { name: 'Aggregate' }).click();
    const entry = page.locator('#started-workflows li', { hasText: `Aggregation of ${acme.days[0]}` });
    await entry.waitFor();
    expect(await entry.locator('.workflow-id').textContent()).toBe(`aggregate-${acme.days[0]}`);
    expect(await entry.getByRole('link', { name: 'open in the Temporal UI' }).getAttribute('href'))
      .toBe(`${tally.config.TEMPORAL_UI_URL}/namespaces/${tally.config.TEMPORAL_NAMESPACE}/workflows/aggregate-${acme.days[0]}`);
    await tally.temporal.workflow.getHandle(`aggregate-${acme.days[0]}`).result();
  });

  it('starts a backfill of a range and follows it to its end', async () => {
    const [from, to] = [acme.days[0]!, acme.days.at(-1)!];
    await page.getByLabel('From', { exact: true }).fill(from);
    await page.getByLabel('To', { exact: true }).fill(to);
    await page.getByRole('button', { name: 'Start backfill' }).click();
    const entry = page.locator('#started-workflows li', { hasText: `Backfill of ${from} to ${to}` });
    await entry.waitFor();
    expect(await entry.locator('.workflow-id').textContent()).toBe(`backfill-${from}-${to}`);
    expect(await entry.getByRole('link').getAttribute('href')).toContain(`/workflows/backfill-${from}-${to}`);
    await expect.poll(() => entry.locator('.progress').textContent(), { timeout: 30_000 }).toMatch(/^3 of 3 days.* · completed$/);
    await screenshot('operations');
  });

  it('lists the workflow that failed, with why', async () => {
    await page.getByRole('link', { name: 'Failed workflows' }).click();
    await page.waitForURL(/workflows\.html/);
    await page.waitForSelector('body[data-ready]');
    const row = page.locator('#failed-workflows tr', { hasText: ghostWorkflowId });
    await row.waitFor();
    expect(await row.innerText()).toContain(`organisation ghost-${run} is not registered`);
    expect(await row.getByRole('link').getAttribute('href')).toMatch(new RegExp(`/workflows/${ghostWorkflowId}/[0-9a-f-]+/history$`));
    await screenshot('workflows');
  });

  it('shows the reconciliation drift of the day whose ledger is behind', async () => {
    await page.getByRole('link', { name: 'Reconciliation' }).click();
    await page.waitForURL(/reconciliation\.html/);
    await page.waitForSelector('body[data-ready]');
    const day = page.locator('#drift-days tr', { hasText: acme.uploadedDay });
    await day.waitFor();
    await day.getByRole('button', { name: `Show the 1 differences of ${acme.uploadedDay}` }).click();
    const difference = page.locator('#drift-differences tbody tr', { hasText: acme.orgId });
    expect(await difference.innerText()).toContain('Ledger behind usage');
    await screenshot('reconciliation');
    expect(pageErrors).toEqual([]);
  });
});
