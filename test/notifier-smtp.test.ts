import { randomBytes } from 'node:crypto';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Notifier } from '../activities/notifier.js';
import { startTestTally, type TestTally } from './support/stack.js';

// Trial emails through a real SMTP server (smtp-server, in process): sent once per notice, however
// often the activity runs, with the notice's key as Message-ID; recorded in the outbox as 'smtp'.

interface Received { from: string; to: string[]; data: string }
let tally: TestTally;
let smtp: SMTPServer;
const received: Received[] = [];
let port = 0;
const run = randomBytes(3).toString('hex');
const orgId = `smtp-${run}`;

beforeAll(async () => {
  tally = await startTestTally();
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, session, callback) {
      let data = '';
      stream.on('data', (chunk: Buffer) => (data += chunk.toString()));
      stream.on('end', () => {
        received.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), data });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  port = (smtp.server.address() as { port: number }).port;
  await tally.db.query('INSERT INTO organisations (id, name, internal_instance_id) VALUES ($1, $1, $2)', [orgId, `inst-${run}`]);
});
afterAll(async () => {
  await new Promise<void>((resolve) => smtp?.close(() => resolve()));
  await tally?.close();
});

describe('trial emails over SMTP', () => {
  it('sends each notice once, with its key as Message-ID, and records it as sent by SMTP', async () => {
    const notifier = new Notifier(tally.db, { webhookUrl: '', webhookSecret: 'unused-secret', smtpUrl: `smtp://127.0.0.1:${port}`, emailFrom: 'Tally Billing <billing@tally.test>' });
    const notice = {
      idempotencyKey: `${orgId}:reminder-7d:2026-12-31T00:00:00.000Z`, orgId, kind: 'reminder-7d', trialEndsAt: '2026-12-31T00:00:00.000Z',
      email: { to: `ada@${orgId}.example`, subject: 'Your Tally trial ends in 7 days', body: 'Add a payment method.' },
    };
    expect(await notifier.send(notice)).toEqual({ email: 'sent', webhook: 'none' });
    // The activity retried (a worker crash after the send): nothing goes out again.
    expect(await notifier.send(notice)).toEqual({ email: 'already-sent', webhook: 'none' });
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ from: 'billing@tally.test', to: [`ada@${orgId}.example`] });
    expect(received[0]!.data).toMatch(/^Subject: Your Tally trial ends in 7 days$/m);
    expect(received[0]!.data).toContain(`Message-ID: <${notice.idempotencyKey}@tally>`);
    const outbox = await tally.db.query('SELECT to_address, transport FROM notification_outbox WHERE idempotency_key = $1', [notice.idempotencyKey]);
    expect(outbox.rows).toEqual([{ to_address: `ada@${orgId}.example`, transport: 'smtp' }]);
  });

  it('keeps a notice with no address in the outbox only', async () => {
    const notifier = new Notifier(tally.db, { webhookUrl: '', webhookSecret: 'unused-secret', smtpUrl: `smtp://127.0.0.1:${port}`, emailFrom: 'billing@tally.test' });
    const key = `${orgId}:expired:2026-12-31T00:00:00.000Z`;
    await notifier.send({ idempotencyKey: key, orgId, kind: 'expired', trialEndsAt: '2026-12-31T00:00:00.000Z', email: { to: null, subject: 'Your Tally trial has ended', body: '…' } });
    expect(received).toHaveLength(1);
    expect((await tally.db.query('SELECT transport FROM notification_outbox WHERE idempotency_key = $1', [key])).rows).toEqual([{ transport: 'outbox' }]);
  });
});
