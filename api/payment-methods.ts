import { createHash, randomBytes } from 'node:crypto';
import type pg from 'pg';
import { ZuoraError } from '../activities/zuora-client.js';
import type { ApiDeps } from './context.js';
import type { OrganisationRecord } from './organisations.js';

export interface PaymentMethodInput { type: string; last4?: string; expiry?: string }

export interface StoredPaymentMethod { id: string; type: string; last4: string | null; expiry: string | null; addedAt: string; addedBy: string }

/**
 * The payment method's id in Tally: made from the Idempotency-Key when there is one, so a retried
 * request finds the method it already added (also after the trial workflow has finished), and
 * the Zuora key made from it (tally-pm-<org>-<id>) adds it to Zuora once.
 */
export function paymentMethodId(orgId: string, idempotencyKey: string | undefined): string {
  if (idempotencyKey === undefined) return `pm_${randomBytes(12).toString('hex')}`;
  return `pm_${createHash('sha256').update(`${orgId}\0${idempotencyKey}`).digest('hex').slice(0, 24)}`;
}

/** The organisation's payment methods, newest first: the first is its default (as in Zuora, where the newest is made default). */
export async function paymentMethodsOf(db: ApiDeps['db'] | pg.ClientBase, orgId: string, id?: string): Promise<StoredPaymentMethod[]> {
  const { rows } = await db.query<{ id: string; type: string; last4: string | null; expiry: string | null; added_at: Date; added_by: string }>(
    `SELECT id, type, last4, expiry, added_at, added_by FROM payment_methods
     WHERE org_id = $1 AND ($2::text IS NULL OR id = $2) ORDER BY added_at DESC, id`,
    [orgId, id ?? null],
  );
  return rows.map((r) => ({ id: r.id, type: r.type, last4: r.last4, expiry: r.expiry, addedAt: r.added_at.toISOString(), addedBy: r.added_by }));
}

/**
 * A paid organisation changing its card: its trial workflow has ended, so there is nothing to
 * convert; the method goes to Zuora as the default (the same key convertOrganisation would use)
 * and then into payment_methods. Both steps are idempotent, so a retry completes a half-done one.
 */
export async function replacePaymentMethod(deps: Pick<ApiDeps, 'db' | 'zuora'>, org: OrganisationRecord, method: PaymentMethodInput & { id: string }, addedBy: string): Promise<void> {
  if (org.zuoraAccountNumber) {
    await deps.zuora.addPaymentMethod(org.zuoraAccountNumber, { type: method.type }, `tally-pm-${org.id}-${method.id}`);
  }
  await deps.db.query(
    `INSERT INTO payment_methods (id, org_id, type, last4, expiry, added_by) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (id) DO NOTHING`,
    [method.id, org.id, method.type, method.last4 ?? null, method.expiry ?? null, addedBy],
  );
}

/** A Zuora failure as the billing API answers it: 502, with Zuora's reasons, never a bare 500. */
export function zuoraUnavailable(err: unknown): { code: 'ZUORA_UNAVAILABLE'; message: string } | undefined {
  if (!(err instanceof ZuoraError) && !(err instanceof TypeError && /fetch failed/.test(err.message))) return undefined;
  return { code: 'ZUORA_UNAVAILABLE', message: `the invoicing system did not answer as expected (${err.message}); try again shortly` };
}
