import {
  ActivityFailure, ApplicationFailure, allHandlersFinished, condition, continueAsNew, defineQuery, defineUpdate, log, proxyActivities, setHandler, workflowInfo,
} from '@temporalio/workflow';
import type * as activities from '../activities/index.js';

const { beginTrial, recordTrialEnd, setOrganisationStatus, convertOrganisation, sendTrialNotification } = proxyActivities<activities.Activities>({
  startToCloseTimeout: '1 minute',
  // A webhook receiver that is down is waited out; one that rejects the notice (4xx) is not.
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '30 minutes', nonRetryableErrorTypes: ['WebhookRejected', 'OrganisationNotFound'] },
});

const DAY_MS = 86_400_000;

export type TrialStatus = 'trial' | 'paid' | 'trial_expired' | 'cancelled';

export interface SentNotification { kind: string; trialEndsAt: string; at: string }
export interface PaymentMethodInput { id?: string; type: string; last4?: string; expiry?: string }

export interface TrialState {
  orgId: string;
  status: TrialStatus;
  startedAt: string;
  endsAt: string;
  reminderDaysBefore: number[];
  /** Reminders that fall before this instant are not sent: the end date was set after them. */
  remindersFrom: string;
  /** The organisation is restricted (status trial_expired was written and the platform told). */
  enforced: boolean;
  contactEmail: string | null;
  notifications: SentNotification[];
  extensions: { days: number; at: string; by: string }[];
  paymentMethod: { id: string; type: string; last4?: string } | null;
  cancelReason: string | null;
}

export interface TrialInput {
  orgId: string;
  /** The trial's length when it starts; a trial already recorded in Postgres keeps its end. */
  trialDays: number;
  reminderDaysBefore: number[];
  contactEmail?: string | null;
  /** The state carried over by continue-as-new. */
  carried?: TrialState;
  /** Continue as new past this many history events (tests set it low). */
  historyLimit?: number;
}

export interface TrialView extends TrialState {
  workflowId: string;
  nextNotice: { kind: string; at: string } | null;
}

export interface ExtendTrialInput { days: number; by?: string }
export interface ConvertTrialInput { paymentMethod: PaymentMethodInput; by?: string }
export interface CancelTrialInput { reason?: string; by?: string }

/** Operators and the billing API act on a trial through these; the API and the tests share them. */
export const extendTrial = defineUpdate<TrialView, [ExtendTrialInput]>('extendTrial');
export const convertTrial = defineUpdate<TrialView, [ConvertTrialInput]>('convertTrial');
export const cancelTrial = defineUpdate<TrialView, [CancelTrialInput]>('cancelTrial');
export const trialState = defineQuery<TrialView>('trialState');
export const trialEndsAt = defineQuery<string>('trialEndsAt');
export const trialNotifications = defineQuery<SentNotification[]>('trialNotifications');

export function trialWorkflowId(orgId: string): string {
  return `trial-${orgId}`;
}

export const MAX_EXTENSION_DAYS = 365;

/**
 * The next notice the trial owes: the expiry once the end has passed; else the latest reminder
 * already due (earlier ones a stopped worker missed are skipped, not sent in a burst); else the
 * earliest future reminder, or the expiry.
 */
export function nextNotice(state: TrialState, nowMs: number): { kind: string; at: string } | null {
  if (state.status !== 'trial') return null;
  const end = Date.parse(state.endsAt);
  const expiry = { kind: 'expired', at: state.endsAt };
  if (end <= nowMs) return expiry;
  const sent = (kind: string) => state.notifications.some((n) => n.kind === kind && n.trialEndsAt === state.endsAt);
  const reminders = [...new Set(state.reminderDaysBefore)]
    .map((days) => ({ kind: `reminder-${days}d`, at: end - days * DAY_MS }))
    .filter((r) => r.at >= Date.parse(state.remindersFrom) && r.at < end)
    .sort((a, b) => a.at - b.at);
  const lastSent = Math.max(-Infinity, ...reminders.filter((r) => sent(r.kind)).map((r) => r.at));
  const pending = reminders.filter((r) => r.at > lastSent && !sent(r.kind));
  const next = pending.filter((r) => r.at <= nowMs).at(-1) ?? pending[0];
  return next ? { kind: next.kind, at: new Date(next.at).toISOString() } : expiry;
}

/**
 * trial-<orgId>: the organisation's free trial, from sign-up to payment, cancellation or
 * expiry. It sleeps to each reminder and to the end, notifies, enforces at expiry, and then
 * waits for a payment method to lift the enforcement. Long-lived: it continues as new, carrying
 * its state, before its history grows large.
 */
export async function trialWorkflow(input: TrialInput): Promise<TrialView> {
  const now = () => new Date(Date.now()).toISOString();
  const state: TrialState = input.carried ?? {
    orgId: input.orgId,
    status: 'trial',
    startedAt: now(),
    endsAt: new Date(Date.now() + input.trialDays * DAY_MS).toISOString(),
    reminderDaysBefore: input.reminderDaysBefore,
    remindersFrom: now(),
    enforced: false,
    contactEmail: input.contactEmail ?? null,
    notifications: [],
    extensions: [],
    paymentMethod: null,
    cancelReason: null,
  };
  const view = (): TrialView => ({ ...state, workflowId: workflowInfo().workflowId, nextNotice: nextNotice(state, Date.now()) });

  // Side effects run one at a time, so an update never interleaves with the expiry's writes.
  let busy = false;
  async function exclusively<T>(work: () => Promise<T>): Promise<T> {
    await condition(() => !busy);
    busy = true;
    try {
      return await work();
    } finally {
      busy = false;
    }
  }
  async function notify(kind: string, extra: Record<string, unknown> = {}): Promise<void> {
    const trialEndsAt = state.endsAt;
    try {
      await sendTrialNotification({ orgId: state.orgId, kind, trialEndsAt, contactEmail: state.contactEmail, occurredAt: now(), data: extra });
    } catch (err) {
      // A notice refused for good (a receiver answering 4xx) must not stop the trial's own course;
      // trial_notifications keeps the error for operators.
      if (!(err instanceof ActivityFailure)) throw err;
      log.error('trial notice not sent', { orgId: state.orgId, kind, error: String(err.cause?.message ?? err.message) });
      return;
    }
    if (!state.notifications.some((n) => n.kind === kind && n.trialEndsAt === trialEndsAt)) {
      state.notifications.push({ kind, trialEndsAt, at: now() });
    }
  }

  setHandler(trialState, view);
  setHandler(trialEndsAt, () => state.endsAt);
  setHandler(trialNotifications, () => state.notifications);

  setHandler(extendTrial, async ({ days, by }) => {
    // Under the lock: the trial's recorded end (beginTrial) is known before it moves.
    await exclusively(async () => {
      if (state.status === 'trial') {
        state.endsAt = new Date(Date.parse(state.endsAt) + days * DAY_MS).toISOString();
      } else if (state.status === 'trial_expired') {
        // Reopened: the days count from now, the platform lifts its restrictions, the customer is told.
        state.endsAt = new Date(Date.now() + days * DAY_MS).toISOString();
        state.status = 'trial';
      } else {
        throw ApplicationFailure.nonRetryable(`the trial of ${state.orgId} became ${state.status} before it could be extended`, 'TrialNotRunning');
      }
      state.remindersFrom = now();
      state.extensions.push({ days, at: now(), by: by ?? 'operator' });
      await recordTrialEnd({ orgId: state.orgId, endsAt: state.endsAt });
      if (state.enforced) {
        await setOrganisationStatus({ orgId: state.orgId, status: 'trial' });
        state.enforced = false;
        await notify('reopened', { days });
      }
    });
    return view();
  }, {
    validator: ({ days }) => {
      if (!Number.isInteger(days) || days < 1 || days > MAX_EXTENSION_DAYS) {
        throw ApplicationFailure.nonRetryable(`days must be a whole number from 1 to ${MAX_EXTENSION_DAYS}, not ${days}`, 'InvalidExtension');
      }
      if (state.status !== 'trial' && state.status !== 'trial_expired') {
        throw ApplicationFailure.nonRetryable(`the trial of ${state.orgId} is ${state.status}; only a running or expired trial can be extended`, 'TrialNotRunning');
      }
    },
  });

  setHandler(convertTrial, async ({ paymentMethod, by }) => {
    state.status = 'paid';
    const id = paymentMethod.id ?? `pm-${state.orgId}-${Date.now()}`;
    state.paymentMethod = { id, type: paymentMethod.type, ...(paymentMethod.last4 ? { last4: paymentMethod.last4 } : {}) };
    await exclusively(async () => {
      await convertOrganisation({ orgId: state.orgId, paymentMethod: { ...paymentMethod, id }, addedBy: by ?? 'operator' });
      if (state.enforced) {
        await notify('lifted', { paymentMethodType: paymentMethod.type });
        state.enforced = false;
      }
    });
    return view();
  }, {
    validator: ({ paymentMethod }) => {
      if (!paymentMethod || typeof paymentMethod.type !== 'string' || paymentMethod.type.trim() === '') {
        throw ApplicationFailure.nonRetryable('paymentMethod.type is required (e.g. CreditCard)', 'InvalidPaymentMethod');
      }
      if (state.status !== 'trial' && state.status !== 'trial_expired') {
        throw ApplicationFailure.nonRetryable(`the trial of ${state.orgId} is ${state.status}; it cannot be converted`, 'TrialNotConvertible');
      }
    },
  });

  setHandler(cancelTrial, async ({ reason }) => {
    state.status = 'cancelled';
    state.cancelReason = reason ?? null;
    await exclusively(async () => {
      await setOrganisationStatus({ orgId: state.orgId, status: 'cancelled' });
      await notify('cancelled', { reason: reason ?? null });
    });
    return view();
  }, {
    validator: (_cancel: CancelTrialInput) => {
      if (state.status !== 'trial' && state.status !== 'trial_expired') {
        throw ApplicationFailure.nonRetryable(`the trial of ${state.orgId} is already ${state.status}`, 'TrialNotCancellable');
      }
    },
  });

  if (!input.carried) {
    // Postgres keeps the first recorded trial: a trial restarted by the sweep keeps its end and its sent notices.
    await exclusively(async () => {
      const recorded = await beginTrial({ orgId: state.orgId, startedAt: state.startedAt, endsAt: state.endsAt });
      if (state.status !== 'trial') return; // an update got here first
      Object.assign(state, {
        status: recorded.status, startedAt: recorded.startedAt, endsAt: recorded.endsAt,
        enforced: recorded.status === 'trial_expired',
        notifications: recorded.notifications,
      });
      if (Date.parse(state.remindersFrom) > Date.parse(recorded.startedAt)) state.remindersFrom = recorded.startedAt;
    });
  }

  const historyLimit = input.historyLimit ?? 10_000;
  const shouldContinueAsNew = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > historyLimit;

  while (state.status === 'trial' || state.status === 'trial_expired') {
    if (shouldContinueAsNew()) {
      await condition(() => allHandlersFinished() && !busy);
      if (state.status === 'trial' || state.status === 'trial_expired') {
        log.info('trial continues as new', { orgId: state.orgId, historyLength: workflowInfo().historyLength });
        return continueAsNew<typeof trialWorkflow>({ ...input, carried: state });
      }
      break;
    }
    if (state.status === 'trial_expired') {
      // Enforced: wait for a payment method (convertTrial) or a cancellation.
      await condition(() => state.status !== 'trial_expired' || shouldContinueAsNew());
      continue;
    }
    const due = nextNotice(state, Date.now())!;
    const endsAtSeen = state.endsAt;
    const waitMs = Date.parse(due.at) - Date.now();
    if (waitMs > 0) {
      const changed = await condition(() => state.endsAt !== endsAtSeen || state.status !== 'trial' || shouldContinueAsNew(), waitMs);
      if (changed) continue;
    }
    await exclusively(async () => {
      if (state.status !== 'trial' || state.endsAt !== endsAtSeen) return; // an update moved or ended the trial meanwhile
      if (due.kind !== 'expired') {
        await notify(due.kind, { daysLeft: Math.round((Date.parse(state.endsAt) - Date.parse(due.at)) / DAY_MS) });
        return;
      }
      state.status = 'trial_expired';
      await notify('expired');
      if (state.status !== 'trial_expired') return; // converted or cancelled while the notice went out
      await setOrganisationStatus({ orgId: state.orgId, status: 'trial_expired' });
      state.enforced = true;
      await notify('enforced');
    });
  }
  await condition(() => allHandlersFinished() && !busy);
  return view();
}

const { startMissingTrialWorkflows } = proxyActivities<activities.Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '10 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes' },
});

/** The trial sweep (a Schedule): every organisation that should have a running trial workflow gets one. */
export async function trialSweepWorkflow(): Promise<{ checked: number; started: string[] }> {
  return startMissingTrialWorkflows();
}
