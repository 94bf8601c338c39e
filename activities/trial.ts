import { Context } from '@temporalio/activity';
import { ApplicationFailure, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { WorkflowIdConflictPolicy, type Client } from '@temporalio/client';
import type pg from 'pg';
import { inTransaction } from '../db/pool.js';
import type { ZuoraClient } from './zuora-client.js';
import type { Config } from '../core/config.js';
import { OrgIdKey } from '../workflows/search-attributes.js';
import type { SentNotification, TrialInput, TrialStatus, trialWorkflow } from '../workflows/trial.js';
import { Notifier, type Notice, type NotifierSettings } from './notifier.js';

export interface TrialSettings extends NotifierSettings {
  trialDays: number;
  reminderDaysBefore: number[];
}

export type TrialConfig = Pick<Config, 'TRIAL_DAYS' | 'TRIAL_REMINDER_DAYS' | 'TRIAL_WEBHOOK_URL' | 'TRIAL_WEBHOOK_SECRET' | 'NOTIFY_SMTP_URL' | 'NOTIFY_EMAIL_FROM'>;

export function trialSettingsFromConfig(config: TrialConfig): TrialSettings {
  return {
    trialDays: config.TRIAL_DAYS,
    reminderDaysBefore: config.TRIAL_REMINDER_DAYS.split(',').filter(Boolean).map(Number),
    webhookUrl: config.TRIAL_WEBHOOK_URL,
    webhookSecret: config.TRIAL_WEBHOOK_SECRET,
    smtpUrl: config.NOTIFY_SMTP_URL,
    emailFrom: config.NOTIFY_EMAIL_FROM,
  };
}

export function trialWorkflowInput(settings: Pick<TrialSettings, 'trialDays' | 'reminderDaysBefore'>, orgId: string, opts: { trialDays?: number; contactEmail?: string | null } = {}): TrialInput {
  return { orgId, trialDays: opts.trialDays ?? settings.trialDays, reminderDaysBefore: settings.reminderDaysBefore, contactEmail: opts.contactEmail ?? null };
}

/**
 * Starts trial-<orgId>. With `joinRunning` an already running trial is left as it is (used on
 * registration, which callers repeat); without it that case throws WorkflowExecutionAlreadyStartedError.
 */
export async function startTrialWorkflow(client: Client, taskQueue: string, input: TrialInput, opts: { joinRunning: boolean }) {
  return client.workflow.start<typeof trialWorkflow>('trialWorkflow', {
    workflowId: `trial-${input.orgId}`,
    taskQueue,
    args: [input],
    typedSearchAttributes: [{ key: OrgIdKey, value: input.orgId }],
    ...(opts.joinRunning ? { workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING } : {}),
  });
}

/** What each kind of notice says, and on which channels: customers get email, the platform webhooks. */
function noticeFor(input: NotifyInput): Notice {
  const end = input.trialEndsAt.slice(0, 10);
  const base = { idempotencyKey: `${input.orgId}:${input.kind}:${input.trialEndsAt}`, orgId: input.orgId, kind: input.kind, trialEndsAt: input.trialEndsAt };
  const webhook = (type: string) => ({ type, data: { occurredAt: input.occurredAt, ...input.data } });
  const reminder = /^reminder-(\d+(?:\.\d+)?)d$/.exec(input.kind);
  if (reminder) {
    return {
      ...base,
      email: { to: input.contactEmail, subject: `Your Tally trial ends in ${reminder[1]} day${reminder[1] === '1' ? '' : 's'}`, body: `The free trial of ${input.orgId} ends on ${end}. Add a payment method to keep your usage flowing without interruption.` },
      webhook: webhook('trial.reminder'),
    };
  }
  switch (input.kind) {
    case 'expired':
      return { ...base, email: { to: input.contactEmail, subject: 'Your Tally trial has ended', body: `The free trial of ${input.orgId} ended on ${end}. Add a payment method to lift the restrictions on your account.` }, webhook: webhook('trial.expired') };
    case 'enforced':
      return { ...base, webhook: webhook('trial.enforced') };
    case 'lifted':
      return { ...base, email: { to: input.contactEmail, subject: 'Your Tally account is active', body: `Thank you: ${input.orgId} has a payment method and its restrictions are lifted.` }, webhook: webhook('trial.enforcement_lifted') };
    case 'reopened':
      return { ...base, email: { to: input.contactEmail, subject: 'Your Tally trial has been extended', body: `The free trial of ${input.orgId} is open again until ${end}, and its restrictions are lifted.` }, webhook: webhook('trial.reopened') };
    case 'cancelled':
      return { ...base, webhook: webhook('trial.cancelled') };
    default:
      throw ApplicationFailure.nonRetryable(`no notice is defined for ${input.kind}`, 'UnknownNoticeKind');
  }
}

export interface NotifyInput {
  orgId: string;
  kind: string;
  trialEndsAt: string;
  contactEmail: string | null;
  occurredAt: string;
  data: Record<string, unknown>;
}

export function createTrialActivities(deps: { db: pg.Pool; trials: TrialSettings; zuora: ZuoraClient }) {
  const notifier = new Notifier(deps.db, deps.trials);
  const orgNotFound = (orgId: string) => ApplicationFailure.nonRetryable(`organisation ${orgId} is not registered`, 'OrganisationNotFound');

  return {
    /** Records the trial the first time; afterwards answers what Postgres holds (a restarted trial keeps its end). */
    async beginTrial(input: { orgId: string; startedAt: string; endsAt: string }): Promise<{ status: TrialStatus; startedAt: string; endsAt: string; notifications: SentNotification[] }> {
      const row = (await deps.db.query<{ status: TrialStatus; trial_started_at: Date; trial_ends_at: Date }>(
        `UPDATE organisations SET trial_started_at = COALESCE(trial_started_at, $2), trial_ends_at = COALESCE(trial_ends_at, $3)
         WHERE id = $1 RETURNING status, trial_started_at, trial_ends_at`,
        [input.orgId, input.startedAt, input.endsAt],
      )).rows[0];
      if (!row) throw orgNotFound(input.orgId);
      const sent = await deps.db.query<{ kind: string; trial_ends_at: Date; created_at: Date }>(
        'SELECT kind, trial_ends_at, created_at FROM trial_notifications WHERE org_id = $1 AND sent_at IS NOT NULL ORDER BY created_at',
        [input.orgId],
      );
      return {
        status: row.status,
        startedAt: row.trial_started_at.toISOString(),
        endsAt: row.trial_ends_at.toISOString(),
        notifications: sent.rows.map((n) => ({ kind: n.kind, trialEndsAt: n.trial_ends_at.toISOString(), at: n.created_at.toISOString() })),
      };
    },

    async recordTrialEnd(input: { orgId: string; endsAt: string }): Promise<void> {
      const res = await deps.db.query('UPDATE organisations SET trial_ends_at = $2 WHERE id = $1', [input.orgId, input.endsAt]);
      if (res.rowCount === 0) throw orgNotFound(input.orgId);
    },

    async setOrganisationStatus(input: { orgId: string; status: TrialStatus }): Promise<void> {
      const res = await deps.db.query(
        'UPDATE organisations SET status = $2, status_changed_at = now() WHERE id = $1 AND status IS DISTINCT FROM $2',
        [input.orgId, input.status],
      );
      if (res.rowCount === 0 && (await deps.db.query('SELECT 1 FROM organisations WHERE id = $1', [input.orgId])).rowCount === 0) throw orgNotFound(input.orgId);
    },

    /**
     * Records the payment method and makes the organisation paid, in one transaction. The Zuora
     * sandbox has no payment-method route yet, so the method lives in Tally's DB only.
     */
    async convertOrganisation(input: { orgId: string; paymentMethod: { id: string; type: string; last4?: string; expiry?: string }; addedBy: string }): Promise<void> {
      const pm = input.paymentMethod;
      // Zuora first: the key makes a retry add the method once, and the organisation is only
      // marked paid once its account can be charged.
      const account = (await deps.db.query<{ zuora_account_number: string | null }>('SELECT zuora_account_number FROM organisations WHERE id = $1', [input.orgId])).rows[0];
      if (!account) throw orgNotFound(input.orgId);
      if (account.zuora_account_number) {
        await deps.zuora.addPaymentMethod(account.zuora_account_number, { type: pm.type }, `tally-pm-${input.orgId}-${pm.id}`);
      }
      await inTransaction(deps.db, async (client) => {
        const res = await client.query("UPDATE organisations SET status = 'paid', status_changed_at = now() WHERE id = $1", [input.orgId]);
        if (res.rowCount === 0) throw orgNotFound(input.orgId);
        await client.query(
          `INSERT INTO payment_methods (id, org_id, type, last4, expiry, added_by) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (id) DO NOTHING`,
          [pm.id, input.orgId, pm.type, pm.last4 ?? null, pm.expiry ?? null, input.addedBy],
        );
      });
    },

    /** Once per (organisation, kind, trial end), however often it is retried. */
    async sendTrialNotification(input: NotifyInput) {
      return notifier.send(noticeFor(input));
    },

    /**
     * The sweep: starts trial-<orgId> for every organisation in trial (or enforced) whose
     * workflow is not running, e.g. registered while Temporal was down, or terminated by hand.
     */
    async startMissingTrialWorkflows(): Promise<{ checked: number; started: string[] }> {
      const ctx = Context.current();
      const { rows } = await deps.db.query<{ id: string; contact_email: string | null; trial_days: number | null }>(
        "SELECT id, contact_email, trial_days FROM organisations WHERE status IN ('trial', 'trial_expired') ORDER BY id",
      );
      const started: string[] = [];
      for (const { id, contact_email: contactEmail, trial_days: trialDays } of rows) {
        try {
          // With what registration was told, so the notices reach the same person.
          const input = trialWorkflowInput(deps.trials, id, { contactEmail, ...(trialDays ? { trialDays } : {}) });
          await startTrialWorkflow(ctx.client, ctx.info.taskQueue, input, { joinRunning: false });
          started.push(id);
        } catch (err) {
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        }
        ctx.heartbeat(id);
      }
      return { checked: rows.length, started };
    },
  };
}
