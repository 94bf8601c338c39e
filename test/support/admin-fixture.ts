import { expect } from 'vitest';
import { addDays, billingDayOf, type BillingDay } from '../../core/billing-day.js';
import type { TestTally } from './stack.js';

/** An organisation with a story an operator would look at: usage over days, an upload, an invoice, late usage, drift. */
export interface SeededOrganisation {
  orgId: string;
  name: string;
  instanceId: string;
  /** Oldest first; the last is the uploaded day. */
  days: BillingDay[];
  uploadedDay: BillingDay;
  today: BillingDay;
  /** Aggregated totals, `${day}|${amountType}` → decimal string, after the late usage. */
  totals: Map<string, string>;
  /** What was uploaded for the uploaded day, before the late usage. */
  uploaded: Map<string, string>;
  /** The live total of today's container-seconds. */
  liveToday: string;
  /** The invoice of the uploaded day, at the sandbox's prices (container-seconds 0.00001, node-seconds 0.00002). */
  invoiceAmount: string;
}

/** Exact: in hundred-thousandths, then written as a decimal without trailing zeros. */
function sandboxInvoiceAmount(containerSeconds: string, nodeSeconds: string): string {
  const digits = (BigInt(containerSeconds) + 2n * BigInt(nodeSeconds)).toString().padStart(6, '0');
  return `${digits.slice(0, -5)}.${digits.slice(-5)}`.replace(/\.?0+$/, '');
}

async function admin(tally: TestTally, url: string, payload: unknown): Promise<Record<string, unknown>> {
  const res = await tally.app.inject({ method: 'POST', url, headers: tally.adminAuth, payload: payload as Record<string, unknown> });
  expect(res.statusCode, `${url} ${res.body}`).toBeLessThan(300);
  return res.json();
}

async function send(tally: TestTally, events: unknown[]): Promise<void> {
  const res = await tally.app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events } });
  expect(res.statusCode, res.body).toBe(200);
  await tally.batchWritten(res.json().batchId);
}

/**
 * Registers an organisation and gives it usage on the days given (aggregated), today's live usage,
 * an upload of the most recent closed day with a Zuora invoice for it, then late usage on that
 * day and a reconciliation that finds the ledger behind.
 */
export async function seedOrganisation(tally: TestTally, run: string, daysBack: number[], label = 'Acme'): Promise<SeededOrganisation> {
  const orgId = `${label.toLowerCase()}-${run}`;
  const name = `${label} Corp ${run}`;
  const instanceId = `${label.toLowerCase()}-instance-${run}`;
  await admin(tally, '/admin/organisations', { id: orgId, name, internalInstanceId: instanceId });

  const today = billingDayOf(Date.now());
  // aggregate-<day> and reconcile-<day> ids are the same on every task queue: each test file
  // passes days of its own, so no other file's run of the same day is joined instead. All are closed.
  const days = daysBack.map((back) => addDays(today, -back));
  const uploadedDay = days.at(-1)!;
  const totals = new Map<string, string>();
  const events = days.flatMap((day, i) => {
    totals.set(`${day}|container-seconds`, String(3600 * (i + 1) + 1800));
    totals.set(`${day}|node-seconds`, String(60 * (i + 1)));
    return [
      { uniqueKey: `${run}-${day}-a`, internalInstanceId: instanceId, timestamp: `${day}T09:00:00.000Z`, amounts: { 'container-seconds': 3600 * (i + 1), 'node-seconds': 60 * (i + 1) }, metadata: {} },
      { uniqueKey: `${run}-${day}-b`, internalInstanceId: instanceId, timestamp: `${day}T15:30:00.000Z`, amounts: { 'container-seconds': 1800 }, metadata: {} },
    ];
  });
  const liveToday = '420';
  events.push({ uniqueKey: `${run}-today`, internalInstanceId: instanceId, timestamp: new Date(Date.now() - 60_000).toISOString(), amounts: { 'container-seconds': Number(liveToday) }, metadata: {} });
  await send(tally, events);
  for (const day of days) await admin(tally, '/admin/aggregations?wait=true', { day });

  await admin(tally, '/admin/uploads?wait=true', { day: uploadedDay });
  const uploaded = new Map([...totals].filter(([key]) => key.startsWith(uploadedDay)));
  const billRun = await fetch(new URL('/sandbox/bill-run', tally.config.ZUORA_BASE_URL), {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ from: uploadedDay, to: uploadedDay }),
  });
  expect(billRun.status).toBe(200);

  // Late usage after the upload: the ledger is behind until the next upload, and reconciliation says so.
  await send(tally, [{ uniqueKey: `${run}-late`, internalInstanceId: instanceId, timestamp: `${uploadedDay}T20:00:00.000Z`, amounts: { 'container-seconds': 100 }, metadata: {} }]);
  await admin(tally, '/admin/aggregations?wait=true', { day: uploadedDay });
  totals.set(`${uploadedDay}|container-seconds`, String(BigInt(totals.get(`${uploadedDay}|container-seconds`)!) + 100n));
  await admin(tally, '/admin/reconciliations?wait=true', { day: uploadedDay });

  const invoiceAmount = sandboxInvoiceAmount(uploaded.get(`${uploadedDay}|container-seconds`)!, uploaded.get(`${uploadedDay}|node-seconds`)!);
  return { orgId, name, instanceId, days, uploadedDay, today, totals, uploaded, liveToday, invoiceAmount };
}
