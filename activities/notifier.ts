import { ApplicationFailure } from '@temporalio/common';
import { createHmac, timingSafeEqual } from 'node:crypto';
import nodemailer, { type Transporter } from 'nodemailer';
import type pg from 'pg';
import { inTransaction } from '../db/pool.js';

export interface NotifierSettings {
  /** Where webhooks go; empty sends none. */
  webhookUrl: string;
  webhookSecret: string;
  /** smtp(s)://…; empty writes emails to the notification_outbox table only. */
  smtpUrl: string;
  emailFrom: string;
}

/** One notice, sent at most once per idempotency key on each of its channels. */
export interface Notice {
  idempotencyKey: string;
  orgId: string;
  kind: string;
  trialEndsAt: string;
  email?: { to: string | null; subject: string; body: string };
  webhook?: { type: string; data: Record<string, unknown> };
}

export type ChannelOutcome = 'sent' | 'already-sent' | 'none';

export const SIGNATURE_HEADER = 'x-tally-signature';
const WEBHOOK_TIMEOUT_MS = 10_000;

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the timestamp is signed so a captured request cannot be replayed later. */
export function signWebhook(secret: string, body: string, timestampSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${timestampSeconds}.${body}`).digest('hex');
  return `t=${timestampSeconds},v1=${mac}`;
}

/** What a webhook receiver runs: true when the signature is ours and at most `toleranceSeconds` old. */
export function verifyWebhookSignature(secret: string, body: string, header: string | undefined, toleranceSeconds = 300, nowMs = Date.now()): boolean {
  const parts = new Map((header ?? '').split(',').map((p) => p.split('=', 2) as [string, string]));
  const t = Number(parts.get('t'));
  const given = parts.get('v1');
  if (!Number.isInteger(t) || !given || Math.abs(nowMs / 1000 - t) > toleranceSeconds) return false;
  const expected = Buffer.from(signWebhook(secret, body, t).split('v1=')[1]!, 'hex');
  const actual = Buffer.from(given, 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/**
 * Sends trial notices by email and webhook. The notice is recorded in Postgres before anything
 * goes out, and each channel is marked when it has gone: a retried activity or a restarted
 * worker finds the mark and does not send again.
 */
export class Notifier {
  private smtp?: Transporter;

  constructor(private readonly db: pg.Pool, private readonly settings: NotifierSettings) {
    if (settings.smtpUrl) this.smtp = nodemailer.createTransport(settings.smtpUrl);
  }

  async send(notice: Notice): Promise<{ email: ChannelOutcome; webhook: ChannelOutcome }> {
    const webhookPayload = notice.webhook
      ? { id: notice.idempotencyKey, type: notice.webhook.type, orgId: notice.orgId, trialEndsAt: notice.trialEndsAt, data: notice.webhook.data }
      : null;
    await this.db.query(
      `INSERT INTO trial_notifications (idempotency_key, org_id, kind, trial_ends_at, payload, email_status, webhook_status)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING`,
      [notice.idempotencyKey, notice.orgId, notice.kind, notice.trialEndsAt, JSON.stringify({ email: notice.email ?? null, webhook: webhookPayload }),
        notice.email ? 'pending' : 'none', webhookPayload && this.settings.webhookUrl ? 'pending' : 'none'],
    );
    const email = await this.sendEmail(notice.idempotencyKey);
    const webhook = await this.sendWebhook(notice.idempotencyKey);
    await this.db.query(
      `UPDATE trial_notifications SET sent_at = now()
       WHERE idempotency_key = $1 AND sent_at IS NULL AND email_status <> 'pending' AND webhook_status <> 'pending'`,
      [notice.idempotencyKey],
    );
    return { email, webhook };
  }

  /** The outbox row and the mark commit together, so the outbox holds each email exactly once. */
  private async sendEmail(key: string): Promise<ChannelOutcome> {
    return inTransaction(this.db, async (client) => {
      const row = (await client.query<{ org_id: string; email_status: string; payload: { email: Notice['email'] | null } }>(
        'SELECT org_id, email_status, payload FROM trial_notifications WHERE idempotency_key = $1 FOR UPDATE', [key],
      )).rows[0];
      const email = row?.payload.email;
      // Nothing written: the commit only lets go of the row.
      if (!row || row.email_status !== 'pending' || !email) return row?.email_status === 'sent' ? 'already-sent' : 'none';
      if (this.smtp && email.to) {
        // A crash between SMTP's answer and the commit resends; the Message-ID lets mail systems drop the copy.
        await this.smtp.sendMail({ from: this.settings.emailFrom, to: email.to, subject: email.subject, text: email.body, messageId: `<${key}@tally>` });
      }
      await client.query(
        `INSERT INTO notification_outbox (idempotency_key, org_id, to_address, subject, body, transport)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING`,
        [key, row.org_id, email.to, email.subject, email.body, this.smtp && email.to ? 'smtp' : 'outbox'],
      );
      await client.query("UPDATE trial_notifications SET email_status = 'sent' WHERE idempotency_key = $1", [key]);
      return 'sent' as const;
    });
  }

  /**
   * POSTs the stored payload (the same bytes on every attempt) with its signature and an
   * Idempotency-Key header; failures are Temporal's to retry, a 4xx other than 408/429 is final.
   */
  private async sendWebhook(key: string): Promise<ChannelOutcome> {
    const row = (await this.db.query<{ webhook_status: string; payload: { webhook: Record<string, unknown> | null } }>(
      `UPDATE trial_notifications SET webhook_attempts = webhook_attempts + 1
       WHERE idempotency_key = $1 AND webhook_status = 'pending' RETURNING webhook_status, payload`, [key],
    )).rows[0];
    if (!row) {
      const status = (await this.db.query<{ webhook_status: string }>('SELECT webhook_status FROM trial_notifications WHERE idempotency_key = $1', [key])).rows[0];
      return status?.webhook_status === 'sent' ? 'already-sent' : 'none';
    }
    const body = JSON.stringify(row.payload.webhook);
    let res: Response;
    try {
      res = await fetch(this.settings.webhookUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'idempotency-key': key,
          'x-tally-event': String(row.payload.webhook?.type ?? ''),
          [SIGNATURE_HEADER]: signWebhook(this.settings.webhookSecret, body, Math.floor(Date.now() / 1000)),
        },
        body,
        signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
      });
    } catch (err) {
      await this.recordWebhookError(key, (err as Error).message);
      throw ApplicationFailure.retryable(`webhook ${this.settings.webhookUrl} unreachable: ${(err as Error).message}`, 'WebhookUnreachable');
    }
    await res.body?.cancel();
    if (res.ok) {
      await this.db.query("UPDATE trial_notifications SET webhook_status = 'sent', last_error = NULL WHERE idempotency_key = $1", [key]);
      return 'sent';
    }
    await this.recordWebhookError(key, `HTTP ${res.status}`);
    const retryAfter = Number(res.headers.get('retry-after'));
    throw ApplicationFailure.create({
      type: 'WebhookRejected',
      message: `webhook ${this.settings.webhookUrl} answered ${res.status} to ${key}`,
      nonRetryable: res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429,
      nextRetryDelay: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined,
    });
  }

  private async recordWebhookError(key: string, message: string): Promise<void> {
    await this.db.query('UPDATE trial_notifications SET last_error = $2 WHERE idempotency_key = $1', [key, message]);
  }

  close(): void {
    this.smtp?.close();
  }
}
