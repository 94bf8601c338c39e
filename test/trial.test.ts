import { Client, Connection, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection, Worker } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { SIGNATURE_HEADER, signWebhook, verifyWebhookSignature } from '../activities/notifier.js';
import { createTrialActivities, startTrialWorkflow, trialWorkflowInput, type TrialSettings } from '../activities/trial.js';
import { migrate } from '../db/migrate.js';
import { createPool } from '../db/pool.js';
import { cancelTrial, convertTrial, extendTrial, trialNotifications, trialState, trialSweepWorkflow, type trialWorkflow } from '../workflows/trial.js';
import { createTimeSkippingEnv } from './support/time-skipping.js';
import { eventually } from './support/eventually.js';
import { zuoraClientFrom } from '../activities/clients.js';
import { loadConfig } from '../core/config.js';

// Trials told as stories on the time-skipping server: month-long timers pass in milliseconds,
// while Postgres and the webhook receiver are real.

const DAY = 86_400_000;
const HOUR = 3_600_000;
const SECRET = 'trial-test-webhook-secret';

interface Received { key: string; type: string; orgId: string; trialEndsAt: string; signed: boolean }

/** A platform endpoint that records what it receives, checks the signature, and can be told to fail. */
async function startWebhookReceiver() {
  const received: Received[] = [];
  let failNext = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      if (failNext > 0) {
        failNext--;
        res.writeHead(503, { 'retry-after': '1' }).end();
        return;
      }
      const payload = JSON.parse(body) as { type: string; orgId: string; trialEndsAt: string };
      received.push({
        key: String(req.headers['idempotency-key']), type: payload.type, orgId: payload.orgId, trialEndsAt: payload.trialEndsAt,
        signed: verifyWebhookSignature(SECRET, body, req.headers[SIGNATURE_HEADER] as string | undefined),
      });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/tally`,
    received,
    failNextRequests(n: number) { failNext = n; },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

let env: TestWorkflowEnvironment;
let db: pg.Pool;
// Organisations here have no Zuora account (they are inserted straight into Postgres): converting records the method in Tally only.
const zuora = zuoraClientFrom(loadConfig(inject('stackEnv')));
let hooks: Awaited<ReturnType<typeof startWebhookReceiver>>;
let settings: TrialSettings;
let worker: { stop(): Promise<void> };
const taskQueue = `trial-${randomBytes(4).toString('hex')}`;

async function startWorker(): Promise<{ stop(): Promise<void> }> {
  const w = await Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    workflowBundle: { codePath: inject('workflowBundlePath') },
    activities: createTrialActivities({ db, trials: settings, zuora }),
    // The test server does not cancel a stopping worker's long polls; cut them after a second.
    shutdownForceTime: '1 second',
  });
  const running = w.run();
  return { async stop() { w.shutdown(); await running; } };
}

beforeAll(async () => {
  const database = `test_trial_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: inject('stackEnv').DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const url = new URL(inject('stackEnv').DATABASE_URL!);
  url.pathname = `/${database}`;
  db = createPool(url.toString(), 5);
  await migrate(db);
  hooks = await startWebhookReceiver();
  settings = { trialDays: 30, reminderDaysBefore: [7, 3, 1], webhookUrl: hooks.url, webhookSecret: SECRET, smtpUrl: '', emailFrom: 'billing@tally.test' };
  env = await createTimeSkippingEnv();
  worker = await startWorker();
});

afterAll(async () => {
  await worker?.stop();
  await env?.teardown();
  await hooks?.close();
  await db?.end();
});

async function registerOrg(): Promise<string> {
  const orgId = `org-${randomBytes(3).toString('hex')}`;
  await db.query('INSERT INTO organisations (id, name, internal_instance_id) VALUES ($1, $2, $3)', [orgId, `Org ${orgId}`, `inst-${orgId}`]);
  return orgId;
}

async function startTrial(orgId: string, opts: { historyLimit?: number } = {}): Promise<WorkflowHandle<typeof trialWorkflow>> {
  const input = { ...trialWorkflowInput(settings, orgId, { contactEmail: `billing@${orgId}.example` }), ...opts };
  return startTrialWorkflow(env.client, taskQueue, input, { joinRunning: true });
}


async function orgStatus(orgId: string): Promise<string> {
  return (await db.query<{ status: string }>('SELECT status FROM organisations WHERE id = $1', [orgId])).rows[0]!.status;
}
const webhooksOf = (orgId: string) => hooks.received.filter((r) => r.orgId === orgId);
async function outboxOf(orgId: string) {
  return (await db.query<{ idempotency_key: string; subject: string; to_address: string }>(
    'SELECT idempotency_key, subject, to_address FROM notification_outbox WHERE org_id = $1 ORDER BY id', [orgId],
  )).rows;
}
function expectEachOnce(keys: string[]) {
  expect(new Set(keys).size).toBe(keys.length);
}

describe('a trial, told as a story', () => {
  it('reminds, moves its reminders when extended, expires and enforces, and lifts on a payment method', async () => {
    const orgId = await registerOrg();
    const handle = await startTrial(orgId);
    const started = await eventually(async () => {
      const s = await handle.query(trialState);
      expect(s.nextNotice?.kind).toBe('reminder-7d');
      return s;
    });
    expect(started.status).toBe('trial');
    const start = Date.parse(started.startedAt);
    expect(Date.parse(started.endsAt) - start).toBe(30 * DAY);
    // The workflow's state answers before its activity has recorded the trial on the organisation.
    await eventually(async () => {
      expect((await db.query('SELECT trial_ends_at FROM organisations WHERE id = $1', [orgId])).rows[0].trial_ends_at?.toISOString()).toBe(started.endsAt);
    });
    expect(await orgStatus(orgId)).toBe('trial');

    // Day 23: seven days left.
    await env.sleep(23 * DAY + HOUR);
    await eventually(async () => expect((await handle.query(trialNotifications)).map((n) => n.kind)).toEqual(['reminder-7d']));
    expect(webhooksOf(orgId).map((w) => w.type)).toEqual(['trial.reminder']);
    expect(webhooksOf(orgId).every((w) => w.signed)).toBe(true);
    expect((await outboxOf(orgId)).map((m) => [m.subject, m.to_address])).toEqual([['Your Tally trial ends in 7 days', `billing@${orgId}.example`]]);

    // The operator extends by ten days: the end moves to day 40 and the reminders with it.
    const extended = await handle.executeUpdate(extendTrial, { args: [{ days: 10 }] });
    expect(Date.parse(extended.endsAt) - start).toBe(40 * DAY);
    expect(extended.nextNotice).toEqual({ kind: 'reminder-7d', at: new Date(start + 33 * DAY).toISOString() });
    await eventually(async () => expect((await db.query('SELECT trial_ends_at FROM organisations WHERE id = $1', [orgId])).rows[0].trial_ends_at.toISOString()).toBe(extended.endsAt));

    // Day 27 (the old 3-day reminder) passes quietly; days 33, 37 and 39 remind.
    await env.sleep(4 * DAY);
    expect((await handle.query(trialNotifications)).length).toBe(1);
    for (const [day, kind] of [[33, 'reminder-7d'], [37, 'reminder-3d'], [39, 'reminder-1d']] as const) {
      await sleepUntil(start + day * DAY + HOUR);
      await eventually(async () => expect((await handle.query(trialNotifications)).at(-1)).toMatchObject({ kind, trialEndsAt: extended.endsAt }));
    }

    // Day 40: the trial ends without a payment method. The customer is told, the platform enforces.
    await sleepUntil(start + 40 * DAY + HOUR);
    await eventually(async () => expect(await orgStatus(orgId)).toBe('trial_expired'));
    await eventually(async () => expect(webhooksOf(orgId).map((w) => w.type).slice(-2)).toEqual(['trial.expired', 'trial.enforced']));
    expect((await handle.query(trialState)).status).toBe('trial_expired');

    // A payment method arrives later: paid, the enforcement is lifted, the workflow ends.
    const paid = await handle.executeUpdate(convertTrial, { args: [{ paymentMethod: { id: `pm-${orgId}`, type: 'CreditCard', last4: '4242' }, by: 'billing-api' }] });
    expect(paid.status).toBe('paid');
    expect(await orgStatus(orgId)).toBe('paid');
    expect((await db.query('SELECT type, last4, added_by FROM payment_methods WHERE org_id = $1', [orgId])).rows).toEqual([{ type: 'CreditCard', last4: '4242', added_by: 'billing-api' }]);
    expect((await handle.result()).status).toBe('paid');

    expect(webhooksOf(orgId).map((w) => w.type)).toEqual([
      'trial.reminder', 'trial.reminder', 'trial.reminder', 'trial.reminder', 'trial.expired', 'trial.enforced', 'trial.enforcement_lifted',
    ]);
    expectEachOnce(webhooksOf(orgId).map((w) => w.key));
    const mail = await outboxOf(orgId);
    expect(mail.map((m) => m.subject)).toEqual([
      'Your Tally trial ends in 7 days', 'Your Tally trial ends in 7 days', 'Your Tally trial ends in 3 days', 'Your Tally trial ends in 1 day',
      'Your Tally trial has ended', 'Your Tally account is active',
    ]);
    expectEachOnce(mail.map((m) => m.idempotency_key));

    // The guard for code changes (docs/trials.md, versioning): this history replays on the current
    // bundle; a change that needs patched() fails here with a nondeterminism error.
    await Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') } }, await handle.fetchHistory());
  });

  it('reopens an expired trial when an operator extends it: restrictions lifted, the customer told, the clock running again', async () => {
    const orgId = await registerOrg();
    const handle = await startTrial(orgId);
    const started = await eventually(async () => handle.query(trialState));
    const start = Date.parse(started.startedAt);
    await sleepUntil(start + 30 * DAY + HOUR);
    await eventually(async () => expect(await orgStatus(orgId)).toBe('trial_expired'));
    await eventually(async () => expect(webhooksOf(orgId).map((w) => w.type).slice(-2)).toEqual(['trial.expired', 'trial.enforced']));

    const reopenedAt = await env.currentTimeMs();
    const reopened = await handle.executeUpdate(extendTrial, { args: [{ days: 7, by: 'support' }] });
    expect(reopened).toMatchObject({ status: 'trial', enforced: false });
    // Seven days from the reopening, not from the old end (which has passed).
    expect(Math.abs(Date.parse(reopened.endsAt) - (reopenedAt + 7 * DAY))).toBeLessThan(HOUR);
    expect(await orgStatus(orgId)).toBe('trial');
    // Told once; the reminder for the new end (seven days out: due at once) may come right behind it.
    const afterEnforcement = () => {
      const types = webhooksOf(orgId).map((w) => w.type);
      return types.slice(types.indexOf('trial.enforced') + 1);
    };
    await eventually(async () => expect(afterEnforcement()[0]).toBe('trial.reopened'));
    expect((await outboxOf(orgId)).map((m) => m.subject)).toContain('Your Tally trial has been extended');

    // And it runs its course again: a reminder for the new end, then expiry and enforcement.
    await sleepUntil(Date.parse(reopened.endsAt) + HOUR);
    await eventually(async () => expect(await orgStatus(orgId)).toBe('trial_expired'));
    await eventually(async () => expect(webhooksOf(orgId).map((w) => w.type).slice(-3)).toEqual(['trial.reminder', 'trial.expired', 'trial.enforced']));
    expectEachOnce(webhooksOf(orgId).map((w) => w.key));
    await handle.terminate('story over');
  });

  it('converts during the trial once, however often the update is sent, and rejects what makes no sense', async () => {
    const orgId = await registerOrg();
    const handle = await startTrial(orgId);
    await expect(handle.executeUpdate(extendTrial, { args: [{ days: 0 }] })).rejects.toThrow(WorkflowUpdateFailedError);
    const rejected = await handle.executeUpdate(extendTrial, { args: [{ days: 1.5 }] }).catch((err: WorkflowUpdateFailedError) => err.cause);
    expect(rejected).toMatchObject({ type: 'InvalidExtension', message: expect.stringContaining('whole number') });
    await expect(handle.executeUpdate(convertTrial, { args: [{ paymentMethod: { type: '' } }] })).rejects.toThrow(WorkflowUpdateFailedError);

    const convert = { args: [{ paymentMethod: { type: 'ACH' } }] as [{ paymentMethod: { type: string } }], updateId: `convert-${orgId}` };
    const first = await handle.executeUpdate(convertTrial, convert);
    const again = await handle.executeUpdate(convertTrial, convert); // a retried request: same update id, same answer
    expect(again).toEqual(first);
    expect(first.status).toBe('paid');
    expect((await handle.result()).status).toBe('paid');
    // A new convert request after that: the trial is over, Temporal refuses it.
    await expect(handle.executeUpdate(convertTrial, { args: [{ paymentMethod: { type: 'ACH' } }] })).rejects.toThrow();
    expect(await orgStatus(orgId)).toBe('paid');
    expect((await db.query('SELECT count(*)::int AS n FROM payment_methods WHERE org_id = $1', [orgId])).rows[0].n).toBe(1);
    expect(webhooksOf(orgId)).toEqual([]); // never enforced, so nothing to lift
  });

  it('cancels, and tells the platform', async () => {
    const orgId = await registerOrg();
    const handle = await startTrial(orgId);
    const cancelled = await handle.executeUpdate(cancelTrial, { args: [{ reason: 'customer left' }] });
    expect(cancelled).toMatchObject({ status: 'cancelled', cancelReason: 'customer left' });
    expect((await handle.result()).status).toBe('cancelled');
    expect(await orgStatus(orgId)).toBe('cancelled');
    expect(webhooksOf(orgId).map((w) => w.type)).toEqual(['trial.cancelled']);
  });

  it('survives a worker restart mid-trial, sending each notice once (on the dev server, in seconds)', async () => {
    // The time-skipping server keeps a stopped worker's long polls alive, so a restart is told on
    // the real dev server of the test stack, with a trial a few seconds long.
    const connection = await NativeConnection.connect({ address: inject('stackEnv').TEMPORAL_ADDRESS! });
    const client = new Client({ connection: await Connection.connect({ address: inject('stackEnv').TEMPORAL_ADDRESS! }) });
    const devQueue = `${taskQueue}-dev`;
    const devWorker = async () => {
      const w = await Worker.create({
        connection, taskQueue: devQueue, workflowBundle: { codePath: inject('workflowBundlePath') },
        activities: createTrialActivities({ db, trials: settings, zuora }), shutdownForceTime: '1 second',
      });
      const running = w.run();
      return { async stop() { w.shutdown(); await running; } };
    };
    try {
      const orgId = await registerOrg();
      const seconds = (n: number) => n / 86_400;
      const first = await devWorker();
      const handle = await startTrialWorkflow(client, devQueue, { orgId, trialDays: seconds(30), reminderDaysBefore: [seconds(20)], contactEmail: null }, { joinRunning: true });
      const reminder = await eventually(async () => {
        const { nextNotice } = await handle.query(trialState);
        expect(nextNotice?.kind).toBe(`reminder-${seconds(20)}d`);
        return Date.parse(nextNotice!.at);
      });
      await first.stop(); // the worker goes away before the reminder is due ...
      await new Promise((r) => setTimeout(r, reminder + 1_000 - Date.now()));
      expect(webhooksOf(orgId)).toEqual([]);
      const second = await devWorker(); // ... and a new one, with nothing cached, picks the trial up
      try {
        // A stopped worker's last poll may still take a task, which then times out (10 s) before the
        // new worker gets it: the trial is long enough for the reminder to come before the end anyway.
        await eventually(async () => expect(await orgStatus(orgId)).toBe('trial_expired'), 45_000);
        // If the new worker got the trial only after the end was due (a loaded machine), the stale
        // reminder is skipped by design; either way each notice goes out once.
        await eventually(async () => expect(webhooksOf(orgId).map((w) => w.type).slice(-2)).toEqual(['trial.expired', 'trial.enforced']));
        const types = webhooksOf(orgId).map((w) => w.type);
        expect([['trial.reminder', 'trial.expired', 'trial.enforced'], ['trial.expired', 'trial.enforced']]).toContainEqual(types);
        expectEachOnce(webhooksOf(orgId).map((w) => w.key));
        // The receiver has the last webhook a moment before the workflow has the activity's answer.
        await eventually(async () => {
          const kinds = (await handle.query(trialNotifications)).map((n) => n.kind);
          expect(kinds).toEqual(types.length === 3 ? [`reminder-${seconds(20)}d`, 'expired', 'enforced'] : ['expired', 'enforced']);
        });
        await handle.terminate('story over');
      } finally {
        await second.stop();
      }
    } finally {
      await connection.close();
      await client.connection.close();
    }
  }, 90_000);

  it('a notice whose webhook fails is retried, then never sent again', async () => {
    const orgId = await registerOrg();
    const { sendTrialNotification } = createTrialActivities({ db, trials: settings, zuora });
    const notice = { orgId, kind: 'reminder-7d', trialEndsAt: '2026-12-31T00:00:00.000Z', contactEmail: null, occurredAt: '2026-12-24T00:00:00.000Z', data: {} };
    hooks.failNextRequests(1);
    // What Temporal sees on the first attempt: a retryable failure that honours Retry-After.
    await expect(sendTrialNotification(notice)).rejects.toMatchObject({ type: 'WebhookRejected', nonRetryable: false, nextRetryDelay: 1000 });
    expect(await sendTrialNotification(notice)).toEqual({ email: 'already-sent', webhook: 'sent' });
    expect(await sendTrialNotification(notice)).toEqual({ email: 'already-sent', webhook: 'already-sent' });
    expect(webhooksOf(orgId)).toEqual([{ key: `${orgId}:reminder-7d:2026-12-31T00:00:00.000Z`, type: 'trial.reminder', orgId, trialEndsAt: notice.trialEndsAt, signed: true }]);
    expect((await outboxOf(orgId)).length).toBe(1);
    const row = (await db.query('SELECT webhook_attempts, webhook_status, sent_at FROM trial_notifications WHERE org_id = $1', [orgId])).rows[0];
    expect(row).toMatchObject({ webhook_attempts: 2, webhook_status: 'sent', sent_at: expect.any(Date) });
  });

  it('rejects a webhook a receiver would not trust', () => {
    const body = '{"type":"trial.reminder"}';
    const now = Date.now();
    const header = signWebhook(SECRET, body, Math.floor(now / 1000));
    expect(verifyWebhookSignature(SECRET, body, header, 300, now)).toBe(true);
    expect(verifyWebhookSignature('another-secret', body, header, 300, now)).toBe(false);
    expect(verifyWebhookSignature(SECRET, body.replace('reminder', 'expired'), header, 300, now)).toBe(false);
    expect(verifyWebhookSignature(SECRET, body, header, 300, now + 3_600_000)).toBe(false); // replayed an hour later
  });

  it('continues as new before its history grows large, carrying its state', async () => {
    const orgId = await registerOrg();
    const handle = await startTrial(orgId, { historyLimit: 25 });
    const firstRun = (await handle.describe()).runId;
    for (let i = 0; i < 4; i++) await handle.executeUpdate(extendTrial, { args: [{ days: 1 }] });
    await eventually(async () => expect((await env.client.workflow.getHandle(handle.workflowId).describe()).runId).not.toBe(firstRun));
    const carried = await env.client.workflow.getHandle(handle.workflowId).query(trialState);
    expect(carried.extensions.map((e) => e.days)).toEqual([1, 1, 1, 1]);
    expect(Date.parse(carried.endsAt) - Date.parse(carried.startedAt)).toBe(34 * DAY);
    await env.client.workflow.getHandle(handle.workflowId).terminate('story over');
  });

  it('the sweep starts the trial of an organisation that has none running, once, with its contact and length', async () => {
    const orgId = await registerOrg();
    await db.query('UPDATE organisations SET contact_email = $2, trial_days = 14 WHERE id = $1', [orgId, `ops@${orgId}.example`]);
    const first = await env.client.workflow.execute(trialSweepWorkflow, { workflowId: `sweep-${orgId}`, taskQueue });
    expect(first.started).toContain(orgId);
    const second = await env.client.workflow.execute(trialSweepWorkflow, { workflowId: `sweep-again-${orgId}`, taskQueue });
    expect(second.started).not.toContain(orgId);
    const trial = env.client.workflow.getHandle(`trial-${orgId}`);
    expect((await trial.describe()).searchAttributes.OrgId).toEqual([orgId]);
    const state = await trial.query(trialState);
    expect(state.contactEmail).toBe(`ops@${orgId}.example`);
    expect(Date.parse(state.endsAt) - Date.parse(state.startedAt)).toBe(14 * DAY);
    await trial.terminate('story over');
  });
});

/** Skips time to an instant of the trial (the workflow's clock, which the test server owns). */
async function sleepUntil(instant: number): Promise<void> {
  const current = await env.currentTimeMs();
  if (instant > current) await env.sleep(instant - current);
}
