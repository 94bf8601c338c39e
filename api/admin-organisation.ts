import { Type, type Static } from '@sinclair/typebox';
import type { ApiDeps } from './context.js';

/** What the admin views of one organisation share: its record as operators see it, and the trial's shape. */

export const OrganisationStatus = Type.Union(
  [Type.Literal('trial'), Type.Literal('paid'), Type.Literal('trial_expired'), Type.Literal('cancelled')],
  { description: 'Billing status, as the trial workflow last wrote it' },
);
export type OrganisationStatus = Static<typeof OrganisationStatus>;

/** The trial as an operator reads it: the workflow's query without its internal bookkeeping. */
export const TrialSummary = Type.Object({
  workflowId: Type.String(),
  temporalUrl: Type.String({ description: 'The trial workflow in the Temporal UI' }),
  status: OrganisationStatus,
  startedAt: Type.String(),
  endsAt: Type.String(),
  enforced: Type.Boolean(),
  nextNotice: Type.Union([Type.Object({ kind: Type.String(), at: Type.String() }), Type.Null()]),
  notifications: Type.Array(Type.Object({ kind: Type.String(), trialEndsAt: Type.String(), at: Type.String() })),
  extensions: Type.Array(Type.Object({ days: Type.Integer(), at: Type.String(), by: Type.String() })),
  paymentMethod: Type.Union([Type.Object({ id: Type.String(), type: Type.String(), last4: Type.Optional(Type.String()) }), Type.Null()]),
  cancelReason: Type.Union([Type.String(), Type.Null()]),
});

export interface OrganisationRecord {
  id: string;
  name: string;
  internalInstanceId: string;
  zuoraAccountNumber: string | null;
  status: OrganisationStatus;
  trialStartedAt: string | null;
  trialEndsAt: string | null;
  statusChangedAt: string | null;
  createdAt: string;
}

export async function findOrganisationRecord(db: ApiDeps['db'], orgId: string): Promise<OrganisationRecord | undefined> {
  const { rows } = await db.query<{
    id: string; name: string; internal_instance_id: string; zuora_account_number: string | null; status: OrganisationStatus;
    trial_started_at: Date | null; trial_ends_at: Date | null; status_changed_at: Date | null; created_at: Date;
  }>(
    `SELECT id, name, internal_instance_id, zuora_account_number, status, trial_started_at, trial_ends_at, status_changed_at, created_at
     FROM organisations WHERE id = $1`,
    [orgId],
  );
  const r = rows[0];
  return r && {
    id: r.id, name: r.name, internalInstanceId: r.internal_instance_id, zuoraAccountNumber: r.zuora_account_number, status: r.status,
    trialStartedAt: r.trial_started_at?.toISOString() ?? null, trialEndsAt: r.trial_ends_at?.toISOString() ?? null,
    statusChangedAt: r.status_changed_at?.toISOString() ?? null, createdAt: r.created_at.toISOString(),
  };
}

export function organisationNotFound(orgId: string): { code: string; message: string } {
  return { code: 'ORG_NOT_FOUND', message: `no organisation ${orgId}: check the id, or register it with POST /admin/organisations` };
}
