import { Type, type Static } from '@sinclair/typebox';
import type pg from 'pg';
import { startTrialWorkflow, trialSettingsFromConfig, trialWorkflowInput } from '../activities/trial.js';
import type { ApiDeps } from './context.js';

export const Organisation = Type.Object({
  id: Type.String(),
  name: Type.String(),
  internalInstanceId: Type.String(),
  zuoraAccountNumber: Type.Union([Type.String(), Type.Null()]),
});
export type Organisation = Static<typeof Organisation>;

/** What registering an organisation takes, whether an operator (POST /admin/organisations) or the customer (POST /v1/signup) asks. */
export const RegistrationFields = {
  name: Type.String({ minLength: 1, maxLength: 255 }),
  internalInstanceId: Type.String({ minLength: 1, maxLength: 256 }),
  currency: Type.String({ default: 'USD', pattern: '^[A-Z]{3}$' }),
  trialDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 365, description: 'Trial length; TRIAL_DAYS when absent' })),
  contact: Type.Object({ firstName: Type.String({ minLength: 1 }), lastName: Type.String({ minLength: 1 }), workEmail: Type.Optional(Type.String()) }, {
    default: { firstName: 'Billing', lastName: 'Contact' },
  }),
};

export interface Registration {
  id: string;
  name: string;
  internalInstanceId: string;
  currency: string;
  trialDays?: number;
  contact: { firstName: string; lastName: string; workEmail?: string };
}

export type RegistrationResult =
  | { ok: true; organisation: Organisation; created: boolean }
  | { ok: false; code: 'ORG_CONFLICT'; field: 'internalInstanceId'; message: string };

/**
 * Registers an organisation: its row, its Zuora account, its trial workflow. Idempotent:
 * registering the same (id, instance) again returns it, creating the Zuora account if an earlier
 * try did not and joining the running trial. `created` says whether this call made the row.
 */
export async function registerOrganisation(deps: ApiDeps, input: Registration): Promise<RegistrationResult> {
  const { config, db, temporal, zuora } = deps;
  const { id, name, internalInstanceId } = input;
  const inserted = await db.query(
    `INSERT INTO organisations (id, name, internal_instance_id, contact_email, trial_days) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (id) DO NOTHING`,
    [id, name, internalInstanceId, input.contact.workEmail ?? null, input.trialDays ?? null],
  ).catch((err: { code?: string }) => {
    if (err.code === '23505') return null; // the instance id belongs to another organisation
    throw err;
  });
  const row = (await db.query<{ id: string; name: string; internal_instance_id: string; zuora_account_number: string | null }>(
    'SELECT id, name, internal_instance_id, zuora_account_number FROM organisations WHERE id = $1', [id],
  )).rows[0];
  if (inserted === null || !row || row.internal_instance_id !== internalInstanceId) {
    return {
      ok: false, code: 'ORG_CONFLICT', field: 'internalInstanceId',
      message: `organisation ${id} or instance ${internalInstanceId} is already registered with a different pairing`,
    };
  }
  let accountNumber = row.zuora_account_number;
  if (accountNumber === null) {
    const account = await zuora.createAccount(
      { name, currency: input.currency, billCycleDay: 1, contact: input.contact },
      `tally-org-${id}`,
    );
    accountNumber = account.accountNumber;
    await db.query('UPDATE organisations SET zuora_account_id = $2, zuora_account_number = $3 WHERE id = $1', [id, account.accountId, accountNumber]);
  }
  // Its trial: started once, joined (not restarted) when registration is repeated; an organisation
  // already paid or cancelled gets none. The hourly trial sweep starts any that this missed.
  const status = (await db.query<{ status: string }>('SELECT status FROM organisations WHERE id = $1', [id])).rows[0]?.status;
  if (status === 'trial' || status === 'trial_expired') {
    await startTrialWorkflow(temporal, config.TEMPORAL_TASK_QUEUE, trialWorkflowInput(trialSettingsFromConfig(config), id, {
      trialDays: input.trialDays, contactEmail: input.contact.workEmail ?? null,
    }), { joinRunning: true });
  }
  return { ok: true, organisation: { id, name: row.name, internalInstanceId, zuoraAccountNumber: accountNumber }, created: (inserted.rowCount ?? 0) > 0 };
}

export interface OrganisationRecord {
  id: string;
  internalInstanceId: string;
  zuoraAccountNumber: string | null;
  status: 'trial' | 'paid' | 'trial_expired' | 'cancelled';
}

/** The organisation behind a billing API request (its token already proved it exists). */
export async function findOrganisation(db: ApiDeps['db'] | pg.ClientBase, orgId: string): Promise<OrganisationRecord | undefined> {
  const row = (await db.query<{ internal_instance_id: string; zuora_account_number: string | null; status: OrganisationRecord['status'] }>(
    'SELECT internal_instance_id, zuora_account_number, status FROM organisations WHERE id = $1', [orgId],
  )).rows[0];
  return row && { id: orgId, internalInstanceId: row.internal_instance_id, zuoraAccountNumber: row.zuora_account_number, status: row.status };
}
