import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import http from 'node:http';
import { verifyWebhookSignature } from '../activities/notifier.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDays, billingDayOf, type BillingDay } from '../core/billing-day.js';
import { backfillWorkflowId } from '../workflows/backfill.js';
import { aggregateDayWorkflow } from '../workflows/aggregate.js';
import { scheduledAggregationWorkflow, scheduledUploadWorkflow } from '../workflows/scheduled.js';
import { uploadDayWorkflow } from '../workflows/upload.js';
import { eventually } from './support/eventually.js';
import { startTestTally, type TestTally } from './support/stack.js';

// Days of our own, so no other test file runs an aggregate-<day> of the same day at the same time.
const today = billingDayOf(Date.now());
const day = (n: number) => addDays(today, -n);
const run = randomBytes(3).toString('hex');
const customer = (name: string) => `inst-agg-${run}-${name}`;

let tally: TestTally;
beforeAll(async () => {
  tally = await startTestTally();
});
afterAll(async () => {
  await tally?.close();
});

let seq = 0;
/** Sends events through the ingest API and waits until the drainer has written them. */
async function ingest(events: { instance: string; day: BillingDay; amounts: Record<string, number> }[]): Promise<string[]> {
  const body = events.map((e) => ({
    uniqueKey: `agg-${run}-${seq++}`,
    internalInstanceId: e.instance,
    timestamp: `${e.day}T${String(seq % 24).padStart(2, '0')}:00:00Z`,
    amounts: e.amounts,
    metadata: { test: 'aggregation' },
  }));
  const res = await tally.app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events: body } });
  expect(res.statusCode).toBe(200);
  expect(res.json().results.every((r: { status: string }) => r.status === 'accepted')).toBe(true);
  await tally.batchWritten(res.json().batchId);
  return body.map((b) => b.uniqueKey);
}

interface Line { total: string; eventCount: number; keyChecksum: string }

/** The day's lines computed here from every raw row (copies included), not by BigQuery's aggregation. */
async function independentLines(d: BillingDay): Promise<Record<string, Line>> {
  const [rows] = await tally.rawEvents['bigquery'].query({
    query: `SELECT insert_id, internal_instance_id, amount_type, CAST(amount_value AS STRING) AS v FROM ${tally.rawEvents.tableRef} WHERE event_date = @day`,
    params: { day: d },
  });
  const seen = new Set<string>();
  const lines: Record<string, { total: bigint; n: number; xor: bigint }> = {};
  for (const r of rows as { insert_id: string; internal_instance_id: string; amount_type: string; v: string }[]) {
    if (seen.has(r.insert_id)) continue; // a second copy of a row: counted once
    seen.add(r.insert_id);
    const k = `${r.internal_instance_id}/${r.amount_type}`;
    const l = (lines[k] ??= { total: 0n, n: 0, xor: 0n });
    l.total += BigInt(r.v);
    l.n++;
    l.xor ^= BigInt(`0x${createHash('md5').update(r.insert_id).digest('hex').slice(0, 15)}`);
  }
  return Object.fromEntries(Object.entries(lines).map(([k, l]) => [k, { total: String(l.total), eventCount: l.n, keyChecksum: String(l.xor) }]));
}

async function storedLines(d: BillingDay): Promise<Record<string, Line>> {
  const { rows } = await tally.db.query<{ internal_instance_id: string; amount_type: string; total: string; event_count: string; key_checksum: string }>(
    'SELECT internal_instance_id, amount_type, total, event_count, key_checksum FROM usage_daily WHERE billing_day = $1 AND event_count > 0', [d],
  );
  return Object.fromEntries(rows.map((r) => [`${r.internal_instance_id}/${r.amount_type}`, { total: r.total, eventCount: Number(r.event_count), keyChecksum: r.key_checksum }]));
}

/** Runs a scheduled workflow by hand, as the schedule would at `asOf`. */
async function scheduled(workflow: typeof scheduledAggregationWorkflow | typeof scheduledUploadWorkflow, asOf: string): Promise<BillingDay[]> {
  return tally.temporal.workflow.execute(workflow, {
    workflowId: `${workflow.name}-${run}-${seq++}`, taskQueue: tally.config.TEMPORAL_TASK_QUEUE, args: [asOf],
  });
}
const lastAggregation = (d: BillingDay) => tally.temporal.workflow.getHandle<typeof aggregateDayWorkflow>(`aggregate-${d}`).result();
const morningAfter = (d: BillingDay) => `${addDays(d, 1)}T05:00:00Z`;

describe('aggregation', () => {
  const d = day(9);

  it('matches an independent computation over the raw events to the unit, the count and the checksum, duplicates included', async () => {
    const events = Array.from({ length: 120 }, (_, i) => ({
      instance: customer(['a', 'b', 'c'][i % 3]!), day: d,
      amounts: (i % 4 === 0 ? { 'container-seconds': 1 + i * 37, 'node-seconds': 3 } : { 'container-seconds': 10_000_000_000 + i }) as Record<string, number>,
    }));
    const keys = await ingest(events);
    // A retried streaming insert leaves second copies of some rows in BigQuery: they must count once.
    const copies = events.slice(0, 15).map((e, i) => ({ key: keys[i]!, instanceId: e.instance, occurredAt: `${d}T01:00:00.000Z`, day: d, amounts: e.amounts, metadata: {} }));
    await tally.rawEvents.insert(copies, 'retried-batch', new Date().toISOString());

    expect(await scheduled(scheduledAggregationWorkflow, morningAfter(d))).toEqual([d]);
    const result = await lastAggregation(d);
    expect(result).toMatchObject({ scanned: true, closedDay: true, restated: 0, lines: 6 });
    const expected = await independentLines(d);
    expect(Object.keys(expected)).toHaveLength(6);
    expect(await storedLines(d)).toEqual(expected);
    // 120 events, of which 30 carry two amount types: 150 rows counted, the 15 copies not.
    expect(Object.values(expected).reduce((n, l) => n + l.eventCount, 0)).toBe(150);
    // The live counters, fed by ingest, agree with the aggregation.
    const live = await tally.db.query("SELECT sum(total)::text AS t, sum(event_count)::int AS n FROM usage_live WHERE billing_day = $1", [d]);
    expect(live.rows[0]).toEqual({ t: Object.values(expected).reduce((s, l) => s + BigInt(l.total), 0n).toString(), n: 150 });
  });

  it('recomputes only the dirty customers, and does nothing at all when no event came', async () => {
    await ingest([{ instance: customer('a'), day: d, amounts: { 'container-seconds': 5 } }]);
    const marks = await tally.db.query('SELECT internal_instance_id, late FROM dirty_days WHERE billing_day = $1', [d]);
    expect(marks.rows).toEqual([{ internal_instance_id: customer('a'), late: true }]);

    expect(await scheduled(scheduledAggregationWorkflow, morningAfter(d))).toEqual([d]);
    expect(await lastAggregation(d)).toMatchObject({ scanned: true, customers: 1, changed: 1, restated: 1, closedDay: false });
    expect(await storedLines(d)).toEqual(await independentLines(d));
    expect((await tally.db.query('SELECT count(*)::int AS n FROM dirty_days')).rows[0].n).toBe(0);

    // Nothing new: no day to visit, so no aggregate-<day> run and no BigQuery scan.
    const before = await tally.temporal.workflow.getHandle(`aggregate-${d}`).describe();
    expect(await scheduled(scheduledAggregationWorkflow, morningAfter(d))).toEqual([]);
    expect((await tally.temporal.workflow.getHandle(`aggregate-${d}`).describe()).runId).toBe(before.runId);
  });

  it('refuses to upload an open day, with the time it closes', async () => {
    const err = await tally.temporal.workflow.execute(uploadDayWorkflow, {
      workflowId: `upload-open-${run}`, taskQueue: tally.config.TEMPORAL_TASK_QUEUE, args: [addDays(today, 1)],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as { type?: string; message: string; cause?: { type?: string; message: string } };
    const failure = cause.cause ?? cause;
    expect(failure.type).toBe('DayOpen');
    expect(failure.message).toMatch(/is open until .*only closed days upload/);
    // An operator asking through the admin API gets the reason, not a 500.
    const res = await tally.app.inject({ method: 'POST', url: '/admin/uploads?wait=true', headers: tally.adminAuth, payload: { day: today } });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'DayOpen', message: expect.stringMatching(new RegExp(`upload-${today} failed: ${today} is open until`)) });
  });
});

describe('late usage after the upload', () => {
  const d = day(26);
  const orgId = `org-agg-${run}`;
  const instance = customer('billed');

  it('restates the day with its reason and ends as a correction of the same record in Zuora', async () => {
    const reg = await tally.app.inject({ method: 'POST', url: '/admin/organisations', headers: tally.adminAuth, payload: { id: orgId, name: 'Late Corp', internalInstanceId: instance } });
    expect(reg.statusCode).toBe(200);
    const account = reg.json().zuoraAccountNumber as string;
    await ingest([{ instance, day: d, amounts: { 'container-seconds': 100 } }, { instance, day: d, amounts: { 'container-seconds': 20 } }]);
    // The daily upload settles and closes the day, then uploads it.
    expect(await scheduled(scheduledUploadWorkflow, morningAfter(d))).toEqual([d]);
    const held = async () => (await tally.zuora.accountUsage(account)).filter((u) => u.startDateTime.startsWith(d));
    expect((await held()).map((u) => u.quantity)).toEqual(['120']);

    // A late event for the closed, uploaded day.
    await ingest([{ instance, day: d, amounts: { 'container-seconds': 7 } }]);
    expect(await scheduled(scheduledAggregationWorkflow, morningAfter(d))).toEqual([d]);
    const restatements = await tally.db.query(
      'SELECT amount_type, previous_total, new_total, previous_event_count, new_event_count, reason, uploaded_before FROM usage_restatements WHERE internal_instance_id = $1', [instance],
    );
    expect(restatements.rows).toEqual([{
      amount_type: 'container-seconds', previous_total: '120', new_total: '127', previous_event_count: 2, new_event_count: 3, reason: 'late-usage', uploaded_before: true,
    }]);
    const metrics = await tally.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/tally_usage_restatements\{reason="late-usage",uploaded_before="true"\} 1/);

    // The next daily upload sends the correction: the same UniqueKey, the new quantity, one record.
    expect(await scheduled(scheduledUploadWorkflow, morningAfter(d))).toEqual([d]);
    expect((await held()).map((u) => u.quantity)).toEqual(['127']);
    const history = await tally.db.query(
      "SELECT h.kind, h.quantity, h.previous_quantity FROM upload_history h JOIN upload_ledger l USING (unique_key) WHERE l.org_id = $1 ORDER BY h.id", [orgId],
    );
    expect(history.rows).toEqual([
      { kind: 'initial', quantity: '120', previous_quantity: null },
      { kind: 'correction', quantity: '127', previous_quantity: '120' },
    ]);
    // And then nothing is left to send.
    expect(await scheduled(scheduledUploadWorkflow, morningAfter(d))).toEqual([]);
  });
});

describe('backfill', () => {
  const from = day(22);
  const to = day(20);

  it('recomputes a range through Temporal, survives a worker restart, and ends with the same totals', async () => {
    // Raw events that reached BigQuery without ingest (a migration, a replay): only a backfill finds them.
    for (const [i, d] of [from, addDays(from, 1), to].entries()) {
      await tally.rawEvents.insert(
        Array.from({ length: 50 }, (_, n) => ({ key: `bf-${run}-${i}-${n}`, instanceId: customer(`bf${n % 5}`), occurredAt: `${d}T03:00:00.000Z`, day: d, amounts: { samples: n + i }, metadata: {} })),
        `bf-batch-${i}`, new Date().toISOString(),
      );
    }
    const started = await tally.app.inject({ method: 'POST', url: '/admin/backfills', headers: tally.adminAuth, payload: { from, to } });
    expect(started.statusCode).toBe(202);
    expect(started.json()).toMatchObject({ workflowId: backfillWorkflowId(from, to), temporalUrl: expect.stringContaining(`/workflows/backfill-${from}-${to}`) });
    // Asking again follows the same run.
    const again = await tally.app.inject({ method: 'POST', url: '/admin/backfills', headers: tally.adminAuth, payload: { from, to } });
    expect(again.json().runId).toBe(started.json().runId);

    const progress = async () => (await tally.app.inject({ method: 'GET', url: `/admin/backfills/${backfillWorkflowId(from, to)}`, headers: tally.adminAuth })).json();
    await eventually(async () => expect((await progress()).progress.done).toBeGreaterThanOrEqual(1));
    await tally.restartWorker();

    const done = await tally.temporal.workflow.getHandle(backfillWorkflowId(from, to)).result();
    expect(done).toMatchObject({ total: 3, done: 3, current: null });
    expect(await progress()).toMatchObject({ status: 'COMPLETED', progress: { done: 3 } });
    // What the Temporal UI shows for the run: its memo and its current details.
    const handle = tally.temporal.workflow.getHandle(backfillWorkflowId(from, to));
    expect((await handle.describe()).memo).toMatchObject({ progress: '3/3' });
    const metadata = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    expect(metadata.currentDetails).toMatch(/^\*\*3 of 3 days\*\* recomputed\./);
    for (const d of [from, addDays(from, 1), to]) {
      const expected = await independentLines(d);
      expect(Object.keys(expected)).toHaveLength(5);
      expect(await storedLines(d)).toEqual(expected);
    }
  });

  it('refuses a range that makes no sense, naming the field', async () => {
    const bad = async (payload: object) => (await tally.app.inject({ method: 'POST', url: '/admin/backfills', headers: tally.adminAuth, payload })).json();
    expect(await bad({ from: to, to: from })).toMatchObject({ code: 'INVALID_RANGE', field: 'from' });
    expect(await bad({ from: today, to: addDays(today, 2) })).toMatchObject({ code: 'INVALID_RANGE', field: 'to' });
    expect(await bad({ from: '2026-02-30', to: today })).toMatchObject({ field: 'from' });
  });

  it('runs from the command line to the end and prints the outcome', async () => {
    const d = day(24);
    await tally.rawEvents.insert([{ key: `cli-${run}`, instanceId: customer('cli'), occurredAt: `${d}T03:00:00.000Z`, day: d, amounts: { samples: 9 }, metadata: {} }], 'cli-batch', new Date().toISOString());
    const { stdout, stderr } = await promisify(execFile)('npx', ['tsx', 'cli/tally.ts', 'backfill', '--from', d, '--quiet'], {
      env: { ...process.env, TEMPORAL_ADDRESS: tally.config.TEMPORAL_ADDRESS, TEMPORAL_TASK_QUEUE: tally.config.TEMPORAL_TASK_QUEUE, TEMPORAL_NAMESPACE: tally.config.TEMPORAL_NAMESPACE },
    });
    expect(stderr).toContain(`backfill-${d}-${d}`);
    expect(JSON.parse(stdout)).toMatchObject({ from: d, to: d, total: 1, done: 1 });
    expect(await storedLines(d)).toEqual({ [`${customer('cli')}/samples`]: expect.objectContaining({ total: '9', eventCount: 1 }) });
  });

  it('keeps a closed day\'s line at zero when its raw rows are removed, restated once, so the upload can correct Zuora', async () => {
    const d = day(24); // closed by the command-line backfill above
    await tally.rawEvents['bigquery'].query({ query: `DELETE FROM ${tally.rawEvents.tableRef} WHERE event_key = @key`, params: { key: `cli-${run}` } });
    const recompute = async () => (await tally.app.inject({ method: 'POST', url: '/admin/aggregations?wait=true', headers: tally.adminAuth, payload: { day: d } })).json().result;
    expect(await recompute()).toMatchObject({ removed: 1, restated: 1, lines: 1 });
    const line = await tally.db.query('SELECT total, event_count FROM usage_daily WHERE billing_day = $1 AND internal_instance_id = $2', [d, customer('cli')]);
    expect(line.rows).toEqual([{ total: '0', event_count: 0 }]);
    // Again: the zero line is settled, nothing is removed or restated a second time.
    expect(await recompute()).toMatchObject({ removed: 0, changed: 0, restated: 0, lines: 1 });
    const restatements = await tally.db.query('SELECT previous_total, new_total, reason FROM usage_restatements WHERE billing_day = $1 AND internal_instance_id = $2', [d, customer('cli')]);
    expect(restatements.rows).toEqual([{ previous_total: '9', new_total: '0', reason: 'recompute' }]);
  });
});

describe('usage thresholds', () => {
  const d = day(27);
  const orgId = `org-thr-${run}`;
  const instance = customer('thr');
  const received: { body: string; signature: string | undefined; answered: number }[] = [];
  let receiver: http.Server;
  let url = '';
  beforeAll(async () => {
    // The customer's endpoint: down for the first delivery, up after.
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const answered = received.length === 0 ? 503 : 200;
        received.push({ body, signature: req.headers['x-tally-signature'] as string | undefined, answered });
        res.writeHead(answered).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hooks`;
  });
  afterAll(() => new Promise<void>((r) => receiver.close(() => r())));

  it('sends one signed webhook when the period crosses the threshold, retried until delivered', async () => {
    expect((await tally.app.inject({ method: 'POST', url: '/admin/organisations', headers: tally.adminAuth, payload: { id: orgId, name: 'Thresholds', internalInstanceId: instance } })).statusCode).toBe(200);
    const headers = await tally.orgAuth(orgId);
    const bad = await tally.app.inject({ method: 'POST', url: `/v1/organisations/${orgId}/thresholds`, headers, payload: { amountType: 'gigawatts', quantity: '1', webhookUrl: url } });
    expect(bad.json()).toMatchObject({ code: 'UNKNOWN_AMOUNT_TYPE', field: 'amountType' });
    const created = await tally.app.inject({ method: 'POST', url: `/v1/organisations/${orgId}/thresholds`, headers, payload: { amountType: 'container-seconds', quantity: '1000', webhookUrl: url } });
    expect(created.statusCode).toBe(201);
    const { id, secret } = created.json();

    await ingest([{ instance, day: d, amounts: { 'container-seconds': 600 } }]);
    await scheduled(scheduledAggregationWorkflow, morningAfter(d));
    expect(received).toHaveLength(0); // 600 of 1000: not crossed

    await ingest([{ instance, day: d, amounts: { 'container-seconds': 500 } }]);
    await scheduled(scheduledAggregationWorkflow, morningAfter(d));
    const periodStart = `${d.slice(0, 7)}-01`;
    await tally.temporal.workflow.getHandle(`threshold-${id}-${periodStart}`).result();
    expect(received.map((r) => r.answered)).toEqual([503, 200]);
    const delivered = received[1]!;
    expect(verifyWebhookSignature(secret, delivered.body, delivered.signature)).toBe(true);
    expect(JSON.parse(delivered.body)).toMatchObject({
      id: `threshold-${id}-${periodStart}`, type: 'usage.threshold_crossed', orgId, amountType: 'container-seconds', threshold: '1000', periodStart, periodTotal: '1100',
    });

    // More usage in the same period: already crossed, nothing more is sent.
    await ingest([{ instance, day: d, amounts: { 'container-seconds': 5000 } }]);
    await scheduled(scheduledAggregationWorkflow, morningAfter(d));
    const listed = (await tally.app.inject({ method: 'GET', url: `/v1/organisations/${orgId}/thresholds`, headers })).json();
    expect(listed.thresholds).toEqual([expect.objectContaining({
      id, quantity: '1000', crossings: [expect.objectContaining({ periodStart, periodTotal: '1100', attempts: 2, lastError: null, deliveredAt: expect.any(String) })],
    })]);
    expect(listed.thresholds[0]).not.toHaveProperty('secret');
    expect(received).toHaveLength(2);
  });
});
