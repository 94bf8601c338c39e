import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { usageUniqueKey } from '../activities/upload.js';
import { addDays, billingDayOf } from '../core/billing-day.js';
import { startTestTally, type TestTally } from './support/stack.js';

// The upload to Zuora beyond the happy path: files cut to Zuora's size limit, and a day that
// changes after its upload ending as a correction of Zuora's record, never a second record.

let tally: TestTally;
const run = randomBytes(3).toString('hex');
const day = addDays(billingDayOf(Date.now()), -2);

interface SandboxUsage { accountNumber: string; quantity: string; uniqueKey?: string }
async function sandboxUsage(accountNumber: string): Promise<SandboxUsage[]> {
  const body = (await (await fetch(new URL('/sandbox/usage', tally.config.ZUORA_BASE_URL))).json()) as { usage: SandboxUsage[] };
  return body.usage.filter((u) => u.accountNumber === accountNumber);
}

async function register(n: number): Promise<string> {
  const res = await tally.app.inject({
    method: 'POST', url: '/admin/organisations', headers: tally.adminAuth,
    payload: { id: `org-${run}-${n}`, name: `Org ${n}`, internalInstanceId: `inst-${run}-${n}` },
  });
  return res.json().zuoraAccountNumber;
}

async function ingest(key: string, n: number, amounts: Record<string, number>): Promise<void> {
  const res = await tally.app.inject({
    method: 'POST', url: '/v1/events', headers: tally.auth,
    payload: { events: [{ uniqueKey: `${run}-${key}`, internalInstanceId: `inst-${run}-${n}`, timestamp: `${day}T12:00:00Z`, amounts }] },
  });
  await tally.batchWritten(res.json().batchId);
}

const runDay = async (what: 'aggregations' | 'uploads') =>
  (await tally.app.inject({ method: 'POST', url: `/admin/${what}?wait=true`, headers: tally.adminAuth, payload: { day } })).json().result;

beforeAll(async () => {
  // Files of ~300 bytes: a header and two records each, so a few orgs need several imports.
  tally = await startTestTally({ ZUORA_IMPORT_MAX_BYTES: '300' });
});
afterAll(async () => {
  await tally?.close();
});

describe('uploading a day to Zuora', () => {
  const accounts: string[] = [];

  it('cuts the day into files under the size limit, one import each, every record once', async () => {
    for (let n = 0; n < 3; n++) accounts.push(await register(n));
    for (let n = 0; n < 3; n++) await ingest(`first-${n}`, n, { 'container-seconds': 100 * (n + 1), samples: n + 1 });
    expect(await runDay('aggregations')).toMatchObject({ lines: 6 });
    const upload = await runDay('uploads');
    expect(upload).toMatchObject({ records: 6, corrections: 0, status: 'Completed' });
    expect(upload.importIds.length).toBeGreaterThanOrEqual(3);
    for (const [n, account] of accounts.entries()) {
      expect((await sandboxUsage(account)).map((u) => u.quantity).sort()).toEqual([String(100 * (n + 1)), String(n + 1)].sort());
    }
    const imports = await tally.db.query("SELECT count(*)::int AS n FROM upload_ledger_imports WHERE status = 'completed'");
    expect(imports.rows[0].n).toBe(upload.importIds.length);
  });

  it('turns late usage for an uploaded day into a correction of the same Zuora record', async () => {
    await ingest('late-0', 0, { 'container-seconds': 50 });
    expect(await runDay('aggregations')).toMatchObject({ changed: 1 });
    const upload = await runDay('uploads');
    expect(upload).toMatchObject({ records: 1, corrections: 1, status: 'Completed' });
    const usage = await sandboxUsage(accounts[0]!);
    expect(usage.map((u) => u.quantity).sort()).toEqual(['1', '150']);
    const key = usageUniqueKey(`org-${run}-0`, day, 'container-seconds');
    expect(usage.find((u) => u.quantity === '150')?.uniqueKey).toBe(key);
    const history = await tally.db.query('SELECT kind, quantity, previous_quantity FROM upload_history WHERE unique_key = $1 ORDER BY id', [key]);
    expect(history.rows).toEqual([
      { kind: 'initial', quantity: '100', previous_quantity: null },
      { kind: 'correction', quantity: '150', previous_quantity: '100' },
    ]);
  });

  it('sends nothing when run again', async () => {
    expect(await runDay('uploads')).toMatchObject({ importIds: [], records: 0, status: 'nothing-to-send' });
    expect(await sandboxUsage(accounts[1]!)).toHaveLength(2);
  });
});
