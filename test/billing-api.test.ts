import { parse } from 'csv-parse/sync';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDays, billingDayOf } from '../core/billing-day.js';
import { eventually } from './support/eventually.js';
import { startTestTally, type TestTally } from './support/stack.js';

// The customer-facing billing API on the real stack: usage ingested through /v1/events, aggregated
// from BigQuery, uploaded to the Zuora sandbox and invoiced there, read back with an organisation token.

let tally: TestTally;
const run = randomBytes(3).toString('hex');
const orgId = `billing-${run}`;
const instanceId = `inst-billing-${run}`;
const neighbour = { orgId: `neighbour-${run}`, instanceId: `inst-neighbour-${run}` };
// Days well before the ones other test files use, so a sandbox bill run of theirs does not cover them.
const today = billingDayOf(Date.now());
const dayA = addDays(today, -12);
const dayB = addDays(today, -11);
const MAX_SAFE = 9_007_199_254_740_991;
let auth: { authorization: string };

function event(key: string, day: string, hour: number, amounts: Record<string, number>, instance = instanceId) {
  return { uniqueKey: `${run}-${key}`, internalInstanceId: instance, timestamp: `${day}T${String(hour).padStart(2, '0')}:30:00.000Z`, amounts, metadata: { source: 'billing-api-test' } };
}

async function ingest(events: ReturnType<typeof event>[]): Promise<void> {
  const res = await tally.app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events } });
  expect(res.statusCode).toBe(200);
  expect(res.json().results.every((r: { status: string }) => r.status === 'accepted')).toBe(true);
  await tally.batchWritten(res.json().batchId);
}

const get = (url: string, headers: Record<string, string> = auth) => tally.app.inject({ method: 'GET', url, headers });

beforeAll(async () => {
  tally = await startTestTally();
  for (const org of [{ orgId, instanceId }, neighbour]) {
    const res = await tally.app.inject({
      method: 'POST', url: '/admin/organisations', headers: tally.adminAuth,
      payload: { id: org.orgId, name: `Org ${org.orgId}`, internalInstanceId: org.instanceId, contact: { firstName: 'Grace', lastName: 'H', workEmail: 'grace@example.com' } },
    });
    expect(res.statusCode).toBe(200);
  }
  auth = await tally.orgAuth(orgId);

  // dayA: 25 container events of 10..250 (five also with node-seconds); dayB: three of 1000 and two
  // samples at 2^53-1 whose sum passes 2^53; the neighbour's usage on dayA must never show.
  const events = [
    ...Array.from({ length: 25 }, (_, i) => event(`a-${String(i).padStart(2, '0')}`, dayA, i % 24, { 'container-seconds': (i + 1) * 10, ...(i < 5 ? { 'node-seconds': 7 } : {}) })),
    ...Array.from({ length: 3 }, (_, i) => event(`b-${i}`, dayB, i, { 'container-seconds': 1000 })),
    event('b-samples-1', dayB, 5, { samples: MAX_SAFE }),
    event('b-samples-2', dayB, 6, { samples: MAX_SAFE }),
    event('neighbour-1', dayA, 3, { 'container-seconds': 999_999 }, neighbour.instanceId),
  ];
  await ingest(events);
  // BigQuery's insertId dedupe is best effort: a second copy of one row must count, and show, once.
  await tally.rawEvents.insert([{ key: `${run}-a-03`, instanceId, occurredAt: `${dayA}T03:30:00.000Z`, day: dayA, amounts: { 'container-seconds': 40 }, metadata: {} }], 'retried-batch', new Date().toISOString());
  for (const day of [dayA, dayB]) {
    const res = await tally.app.inject({ method: 'POST', url: '/admin/aggregations?wait=true', headers: tally.adminAuth, payload: { day } });
    expect(res.statusCode).toBe(200);
  }
}, 180_000);

afterAll(async () => {
  for (const id of [orgId, neighbour.orgId]) await tally?.temporal.workflow.getHandle(`trial-${id}`).terminate('test over').catch(() => undefined);
  await tally?.close();
});

const lines = [
  { day: dayA, amountType: 'container-seconds', total: '3250', eventCount: 25 },
  { day: dayA, amountType: 'node-seconds', total: '35', eventCount: 5 },
  { day: dayB, amountType: 'container-seconds', total: '3000', eventCount: 3 },
  { day: dayB, amountType: 'samples', total: '18014398509481982', eventCount: 2 },
];

describe('usage by day and amount type', () => {
  it('answers exact lines and totals per amount type, the neighbour excluded', async () => {
    const res = await get(`/v1/organisations/${orgId}/usage?from=${dayA}&to=${dayB}`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      orgId, from: dayA, to: dayB, usage: lines,
      totals: [
        { amountType: 'container-seconds', total: '6250', eventCount: 28 },
        { amountType: 'node-seconds', total: '35', eventCount: 5 },
        { amountType: 'samples', total: '18014398509481982', eventCount: 2 },
      ],
    });
  });

  it('exports the same lines as CSV, by ?format=csv or by Accept', async () => {
    const expected = [['day', 'amount_type', 'total', 'event_count'], ...lines.map((l) => [l.day, l.amountType, l.total, String(l.eventCount)])];
    for (const [query, headers] of [['&format=csv', auth], ['', { ...auth, accept: 'text/csv' }], ['', { ...auth, accept: 'application/json;q=0.5, text/csv' }]] as const) {
      const res = await get(`/v1/organisations/${orgId}/usage?from=${dayA}&to=${dayB}${query}`, headers);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
      expect(res.headers['content-disposition']).toBe(`attachment; filename="usage-${orgId}-${dayA}-${dayB}.csv"`);
      expect(parse(res.body)).toEqual(expected);
    }
    const json = await get(`/v1/organisations/${orgId}/usage?from=${dayA}&to=${dayB}`, { ...auth, accept: 'text/csv;q=0.1, application/json' });
    expect(json.headers['content-type']).toMatch(/^application\/json/);
  });

  it('refuses a bad range with a code and the field', async () => {
    const cases = [
      [`from=${dayB}&to=${dayA}`, 'INVALID_RANGE', 'from'],
      [`from=${addDays(dayB, -366)}&to=${dayB}`, 'RANGE_TOO_LONG', 'from'],
      ['from=2025-02-30', 'INVALID_DAY', 'from'],
      ['to=yesterday', 'INVALID_REQUEST', 'to'],
      ['format=xml', 'INVALID_REQUEST', 'format'],
    ] as const;
    for (const [query, code, field] of cases) {
      const res = await get(`/v1/organisations/${orgId}/usage?${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.json(), query).toEqual({ code, field, message: expect.any(String) });
    }
    // 366 days, the most: accepted.
    expect((await get(`/v1/organisations/${orgId}/usage?from=${addDays(dayB, -365)}&to=${dayB}`)).statusCode).toBe(200);
  });
});

describe('lineage: the raw events behind a daily line', () => {
  it('pages through every event of the line once, matching its count and total', async () => {
    const seen: string[] = [];
    let sum = 0n;
    let pageToken: string | null = null;
    let pages = 0;
    do {
      const res = await get(`/v1/organisations/${orgId}/usage/${dayA}/container-seconds/events?limit=10${pageToken ? `&pageToken=${encodeURIComponent(pageToken)}` : ''}`);
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body).toMatchObject({ orgId, day: dayA, amountType: 'container-seconds', total: '3250', eventCount: 25 });
      for (const e of body.events) {
        seen.push(e.insertId);
        sum += BigInt(e.amountValue);
      }
      pageToken = body.nextPageToken;
      pages++;
    } while (pageToken);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(25);
    expect(new Set(seen).size).toBe(25);
    expect(seen).toEqual([...seen].sort());
    expect(seen).toContain(`${run}-a-03:container-seconds`);
    expect(sum.toString()).toBe('3250');
  });

  it('shows each raw event with what the producer sent', async () => {
    const res = await get(`/v1/organisations/${orgId}/usage/${dayB}/samples/events`);
    expect(res.json().events).toEqual([1, 2].map((n) => ({
      insertId: `${run}-b-samples-${n}:samples`, eventKey: `${run}-b-samples-${n}`, amountValue: String(MAX_SAFE),
      occurredAt: `${dayB}T0${4 + n}:30:00.000Z`, receivedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), batchId: expect.any(String),
      metadata: { source: 'billing-api-test' },
    })));
    expect(res.json().nextPageToken).toBeNull();
  });

  it('refuses a bad limit, a foreign page token and a line that does not exist', async () => {
    for (const limit of [0, 1001]) {
      const res = await get(`/v1/organisations/${orgId}/usage/${dayA}/container-seconds/events?limit=${limit}`);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: 'INVALID_REQUEST', field: 'limit' });
    }
    const first = (await get(`/v1/organisations/${orgId}/usage/${dayA}/container-seconds/events?limit=1`)).json();
    const foreign = await get(`/v1/organisations/${orgId}/usage/${dayA}/node-seconds/events?pageToken=${first.nextPageToken}`);
    expect(foreign.json()).toMatchObject({ code: 'INVALID_PAGE_TOKEN', field: 'pageToken' });
    expect((await get(`/v1/organisations/${orgId}/usage/${dayA}/container-seconds/events?pageToken=garbage`)).json().code).toBe('INVALID_PAGE_TOKEN');
    const missing = await get(`/v1/organisations/${orgId}/usage/${dayA}/samples/events`);
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('USAGE_LINE_NOT_FOUND');
  });
});

describe('live usage', () => {
  it('counts what ingest accepted today within seconds, duplicates once', async () => {
    // At the day's first instant: today's 00:30 is still in the future in the day's first half hour.
    const startOfToday = `${today}T00:00:00.000Z`;
    const events = [event('live-1', today, 0, { 'container-seconds': 120, samples: 5 }), event('live-2', today, 0, { 'container-seconds': 30 })]
      .map((e) => ({ ...e, timestamp: startOfToday }));
    await ingest(events);
    const resent = await tally.app.inject({ method: 'POST', url: '/v1/events', headers: tally.auth, payload: { events } });
    expect(resent.json().results.map((r: { status: string }) => r.status)).toEqual(['duplicate', 'duplicate']);
    const live = await eventually(async () => {
      const res = await get(`/v1/organisations/${orgId}/usage/live`);
      expect(res.statusCode).toBe(200);
      expect(res.json().totals.map(({ updatedAt: _u, ...t }: { updatedAt: string }) => t)).toEqual([
        { amountType: 'container-seconds', total: '150', eventCount: 2 },
        { amountType: 'samples', total: '5', eventCount: 1 },
      ]);
      return res.json();
    }, 30_000);
    expect(live).toMatchObject({ orgId, day: today });
    expect(Date.now() - Date.parse(live.updatedAt)).toBeLessThan(60_000);
    // Another day (one with no usage) answers empty totals, not an error.
    expect((await get(`/v1/organisations/${orgId}/usage/live?day=${addDays(today, -30)}`)).json()).toEqual({ orgId, day: addDays(today, -30), totals: [], updatedAt: null });
  });
});

describe('trial, payment method and invoices', () => {
  let accountNumber: string;

  it('shows the running trial', async () => {
    const res = await get(`/v1/organisations/${orgId}/trial`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ orgId, status: 'trial', restricted: false, paymentMethod: null, daysLeft: tally.config.TRIAL_DAYS });
    const empty = await get(`/v1/organisations/${orgId}/payment-method`);
    expect(empty.json()).toMatchObject({ status: 'trial', paymentMethod: null, zuoraDefaultPaymentMethodId: null });
  });

  it('refuses a card without its details or past its expiry', async () => {
    const put = (payload: object) => tally.app.inject({ method: 'PUT', url: `/v1/organisations/${orgId}/payment-method`, headers: auth, payload });
    expect((await put({ type: 'CreditCard', expiry: '12/2099' })).json()).toMatchObject({ code: 'INVALID_PAYMENT_METHOD', field: 'last4' });
    expect((await put({ type: 'CreditCard', last4: '4242', expiry: '01/2020' })).json()).toMatchObject({ code: 'CARD_EXPIRED', field: 'expiry' });
    expect((await put({ type: 'CreditCard', last4: '42', expiry: '12/2099' })).json()).toMatchObject({ code: 'INVALID_REQUEST', field: 'last4' });
    expect((await put({ last4: '4242' })).json()).toMatchObject({ code: 'INVALID_REQUEST', field: 'type' });
  });

  it('adds a card: Zuora has it as the default and the trial is paid; a retry adds it once', async () => {
    const request = () => tally.app.inject({
      method: 'PUT', url: `/v1/organisations/${orgId}/payment-method`, headers: { ...auth, 'idempotency-key': `card-${run}` },
      payload: { type: 'CreditCard', last4: '4242', expiry: '12/2099' },
    });
    const res = await request();
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ orgId, status: 'paid', paymentMethod: { type: 'CreditCard', last4: '4242', expiry: '12/2099' } });
    accountNumber = (await tally.db.query('SELECT zuora_account_number FROM organisations WHERE id = $1', [orgId])).rows[0].zuora_account_number;
    const account = await tally.zuora.account(accountNumber);
    expect(account.defaultPaymentMethodId).toMatch(/^[0-9a-f]{32}$/);
    expect(res.json().zuoraDefaultPaymentMethodId).toBe(account.defaultPaymentMethodId);

    const trial = (await get(`/v1/organisations/${orgId}/trial`)).json();
    expect(trial).toMatchObject({ status: 'paid', daysLeft: null, paymentMethod: { type: 'CreditCard', last4: '4242' } });

    const again = await request();
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(res.json());
    expect((await tally.zuora.account(accountNumber)).defaultPaymentMethodId).toBe(account.defaultPaymentMethodId);
    expect((await tally.db.query('SELECT count(*)::int AS n FROM payment_methods WHERE org_id = $1', [orgId])).rows[0].n).toBe(1);
  });

  it('changes the card of a paid organisation', async () => {
    const before = (await tally.zuora.account(accountNumber)).defaultPaymentMethodId;
    const res = await tally.app.inject({
      method: 'PUT', url: `/v1/organisations/${orgId}/payment-method`, headers: { ...auth, 'idempotency-key': `card-2-${run}` },
      payload: { type: 'CreditCard', last4: '1881', expiry: '01/2098' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'paid', paymentMethod: { last4: '1881' } });
    const after = (await tally.zuora.account(accountNumber)).defaultPaymentMethodId;
    expect(after).not.toBe(before);
    expect(res.json().zuoraDefaultPaymentMethodId).toBe(after);
    expect((await get(`/v1/organisations/${orgId}/payment-method`)).json().paymentMethod).toMatchObject({ last4: '1881', expiry: '01/2098' });
  });

  it('lists the invoice a Zuora bill run made from the uploaded usage', async () => {
    expect((await get(`/v1/organisations/${orgId}/invoices`)).json()).toEqual({ orgId, zuoraAccountNumber: accountNumber, invoices: [] });
    for (const day of [dayA, dayB]) {
      const upload = await tally.app.inject({ method: 'POST', url: '/admin/uploads?wait=true', headers: tally.adminAuth, payload: { day } });
      expect(upload.statusCode).toBe(200);
    }
    const billRun = await fetch(new URL('/sandbox/bill-run', tally.config.ZUORA_BASE_URL), {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ from: dayA, to: dayB }),
    });
    expect(billRun.status).toBe(200);
    const res = await get(`/v1/organisations/${orgId}/invoices`);
    expect(res.statusCode).toBe(200);
    // 6250 × 0.00001 + 35 × 0.00002 + 18014398509481982 × 0.000001, exactly.
    expect(res.json().invoices).toContainEqual({
      id: expect.stringMatching(/^[0-9a-f]{32}$/), invoiceNumber: expect.stringMatching(/^INV\d+$/), invoiceDate: dayB, dueDate: dayB,
      amount: '18014398509.545182', balance: '18014398509.545182', status: 'Posted',
    });
  });
});
