import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { addDays, billingDayOf, type BillingDay } from '../core/billing-day.js';
import { usageUniqueKey } from '../activities/upload.js';
import { startTestTally, type TestTally } from './support/stack.js';

// The whole path on real pieces: ingest API → Temporal → BigQuery emulator → aggregate → Postgres
// → upload → Zuora sandbox → billing API, with exact totals at every stage.

let tally: TestTally;
const run = randomBytes(3).toString('hex');
const orgId = `org-${run}`;
const instanceId = `inst-${run}`;
const day = addDays(billingDayOf(Date.now()), -1);

interface SandboxUsage { accountNumber: string; unitOfMeasure: string; quantity: string; uniqueKey?: string; startDateTime: string }

async function sandboxUsage(accountNumber: string): Promise<SandboxUsage[]> {
  const res = await fetch(new URL('/sandbox/usage', tally.config.ZUORA_BASE_URL));
  const body = (await res.json()) as { usage: SandboxUsage[] };
  return body.usage.filter((u) => u.accountNumber === accountNumber);
}

function event(n: number, amounts: Record<string, number>, at: BillingDay = day) {
  return {
    uniqueKey: `${run}-event-${n}`,
    internalInstanceId: instanceId,
    timestamp: `${at}T${String(n % 24).padStart(2, '0')}:15:00.000Z`,
    amounts,
    metadata: { service: 'scope', n: String(n) },
  };
}

beforeAll(async () => {
  tally = await startTestTally();
});
afterAll(async () => {
  await tally?.close();
});

describe('the pipeline, end to end', () => {
  let accountNumber: string;

  it('registers an organisation with its Zuora account', async () => {
    const res = await tally.app.inject({
      method: 'POST', url: '/admin/organisations', headers: tally.adminAuth,
      payload: { id: orgId, name: `Org ${run}`, internalInstanceId: instanceId },
    });
    expect(res.statusCode).toBe(200);
    accountNumber = res.json().zuoraAccountNumber;
    expect(accountNumber).toMatch(/^A\d+$/);
    // Registering again is idempotent: same account, no second one.
    const again = await tally.app.inject({ method: 'POST', url: '/admin/organisations', headers: tally.adminAuth, payload: { id: orgId, name: `Org ${run}`, internalInstanceId: instanceId } });
    expect(again.json().zuoraAccountNumber).toBe(accountNumber);
  });

  it('ingests a batch: accepted, duplicate, conflict and invalid, in order', async () => {
    const events = [
      event(1, { 'container-seconds': 3600, 'node-seconds': 60 }),
      event(2, { 'container-seconds': 1800 }),
      event(3, { samples: 1_000_000_007 }),
      event(1, { 'container-seconds': 3600, 'node-seconds': 60 }), // same key, same payload
      event(2, { 'container-seconds': 9999 }), // same key, another payload
      { ...event(4, { 'container-seconds': 5 }), amounts: { 'container-seconds': -5 } },
      { ...event(5, { 'bogus-seconds': 5 }) },
      { ...event(6, { 'container-seconds': 5 }), timestamp: 'yesterday' },
    ];
    const res = await tally.app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events } });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.results.map((r: { status: string }) => r.status)).toEqual([
      'accepted', 'accepted', 'accepted', 'duplicate', 'conflict', 'invalid', 'invalid', 'invalid',
    ]);
    expect(body.results[5]).toMatchObject({ field: 'amounts.container-seconds' });
    expect(body.results[6]).toMatchObject({ field: 'amounts.bogus-seconds', reason: expect.stringContaining('unknown amount type') });
    expect(body.results[7]).toMatchObject({ field: 'timestamp' });
    expect(body.workflowId).toBe(`ingest-drainer-${tally.config.TEMPORAL_TASK_QUEUE}`);
    expect(body.temporalUrl).toContain(`/workflows/${body.workflowId}`);
    await tally.batchWritten(body.batchId);

    // The producer retries the whole request: everything is a duplicate or conflict, nothing new is stored.
    const retry = await tally.app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events: events.slice(0, 3) } });
    expect(retry.json().results.map((r: { status: string }) => r.status)).toEqual(['duplicate', 'duplicate', 'duplicate']);
    expect(retry.json().batchId).toBeNull();

    // A second batch, later the same day.
    const more = await tally.app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events: [event(7, { 'container-seconds': 200, 'node-seconds': 40 })] } });
    await tally.batchWritten(more.json().batchId);
  });

  it('stores one BigQuery row per event and amount type', async () => {
    expect(await tally.rawEvents.countRows(day)).toEqual({ rows: 6, distinctInsertIds: 6 });
  });

  it('aggregates the day into Postgres with exact totals, deduplicating a re-inserted row', async () => {
    // BigQuery's insertId dedupe is best effort: a retried insert may leave a copy. Make one.
    await tally.rawEvents.insert(
      [{ key: `${run}-event-2`, instanceId, occurredAt: `${day}T02:15:00.000Z`, day, amounts: { 'container-seconds': 1800 }, metadata: {} }],
      'retried-batch', new Date().toISOString(),
    );
    expect(await tally.rawEvents.countRows(day)).toEqual({ rows: 7, distinctInsertIds: 6 });

    const res = await tally.app.inject({ method: 'POST', url: '/admin/aggregations?wait=true', headers: tally.adminAuth, payload: { day } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ workflowId: `aggregate-${day}`, result: { lines: 3, changed: 3, removed: 0, scanned: true, closedDay: true, restated: 0 } });
    const { rows } = await tally.db.query(
      'SELECT amount_type, total, event_count FROM usage_daily WHERE internal_instance_id = $1 AND billing_day = $2 ORDER BY amount_type',
      [instanceId, day],
    );
    expect(rows).toEqual([
      { amount_type: 'container-seconds', total: '5600', event_count: 3 },
      { amount_type: 'node-seconds', total: '100', event_count: 2 },
      { amount_type: 'samples', total: '1000000007', event_count: 1 },
    ]);
  });

  it('uploads the day to Zuora under deterministic UniqueKeys and records each in the ledger', async () => {
    const res = await tally.app.inject({ method: 'POST', url: '/admin/uploads?wait=true', headers: tally.adminAuth, payload: { day } });
    expect(res.statusCode).toBe(200);
    expect(res.json().result).toMatchObject({ importIds: [expect.any(String)], records: 3, corrections: 0, status: 'Completed', unbillable: 0 });
    const usage = await sandboxUsage(accountNumber);
    expect(usage.map((u) => [u.unitOfMeasure, u.quantity, u.uniqueKey]).sort()).toEqual([
      ['CONTAINER_SECONDS', '5600', usageUniqueKey(orgId, day, 'container-seconds')],
      ['NODE_SECONDS', '100', usageUniqueKey(orgId, day, 'node-seconds')],
      ['SAMPLES', '1000000007', usageUniqueKey(orgId, day, 'samples')],
    ]);
    expect(usage.every((u) => u.startDateTime.startsWith(day))).toBe(true);
    const ledger = await tally.db.query('SELECT status, count(*)::int AS n FROM upload_ledger WHERE org_id = $1 GROUP BY status', [orgId]);
    expect(ledger.rows).toEqual([{ status: 'completed', n: 3 }]);
  });

  it('changes nothing when the aggregation and the upload run again', async () => {
    const aggregate = await tally.app.inject({ method: 'POST', url: '/admin/aggregations?wait=true', headers: tally.adminAuth, payload: { day } });
    expect(aggregate.json().result).toMatchObject({ lines: 3, changed: 0, removed: 0, closedDay: false, restated: 0 });
    const upload = await tally.app.inject({ method: 'POST', url: '/admin/uploads?wait=true', headers: tally.adminAuth, payload: { day } });
    expect(upload.json().result).toMatchObject({ importIds: [], records: 0, status: 'nothing-to-send' });
    const usage = await sandboxUsage(accountNumber);
    expect(usage).toHaveLength(3);
    expect(usage.map((u) => u.quantity).sort()).toEqual(['100', '1000000007', '5600']);
  });

  it('serves the daily usage in the billing API', async () => {
    const orgAuth = await tally.orgAuth(orgId);
    const res = await tally.app.inject({ method: 'GET', url: `/v1/organisations/${orgId}/usage?from=${day}&to=${day}`, headers: orgAuth });
    expect(res.statusCode).toBe(200);
    expect(res.json().usage).toEqual([
      { day, amountType: 'container-seconds', total: '5600', eventCount: 3 },
      { day, amountType: 'node-seconds', total: '100', eventCount: 2 },
      { day, amountType: 'samples', total: '1000000007', eventCount: 1 },
    ]);
    // Another organisation (here one that does not exist) is "not found" to this token.
    const unknown = await tally.app.inject({ method: 'GET', url: '/v1/organisations/nobody/usage', headers: orgAuth });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('ORG_NOT_FOUND');
  });
});
