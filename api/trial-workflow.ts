import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { trialState, trialWorkflowId, type TrialView } from '../workflows/trial.js';

/** What a read or an update of trial-<orgId> came to: the trial, or the HTTP refusal to answer with. */
export type TrialOutcome<Status extends number = 400 | 404 | 409> =
  | { ok: true; trial: TrialView }
  | { ok: false; status: Status; error: { code: string; message: string } };

/** Rejections the trial's validators give, as HTTP: a bad request, or a trial in the wrong state. */
const BAD_REQUEST = new Set(['InvalidExtension', 'InvalidPaymentMethod']);

function notFound(orgId: string): TrialOutcome<404> {
  return {
    ok: false, status: 404,
    error: { code: 'TRIAL_NOT_FOUND', message: `no trial workflow ${trialWorkflowId(orgId)}: is ${orgId} registered? The trial sweep starts missing ones hourly.` },
  };
}

/** The trial as its workflow tells it (also after the workflow finished: paid or cancelled). */
export async function readTrial(temporal: Client, orgId: string): Promise<TrialOutcome<404>> {
  try {
    return { ok: true, trial: await temporal.workflow.getHandle(trialWorkflowId(orgId)).query(trialState) };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return notFound(orgId);
    throw err;
  }
}

/** Runs a Temporal update on trial-<orgId>; the operators' routes and the billing API share it. */
export async function updateTrial(temporal: Client, orgId: string, run: (handle: WorkflowHandle) => Promise<TrialView>): Promise<TrialOutcome> {
  const handle = temporal.workflow.getHandle(trialWorkflowId(orgId));
  try {
    return { ok: true, trial: await run(handle) };
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
      const type = err.cause.type ?? 'TrialUpdateRejected';
      return { ok: false, status: BAD_REQUEST.has(type) ? 400 : 409, error: { code: type, message: err.cause.message } };
    }
    if (err instanceof WorkflowNotFoundError) {
      // The workflow may have finished (paid or cancelled): say so rather than "not found".
      const finished = await handle.query(trialState).catch(() => null);
      if (finished) return { ok: false, status: 409, error: { code: 'TrialClosed', message: `the trial of ${orgId} is ${finished.status}; it takes no more changes` } };
      return notFound(orgId);
    }
    throw err;
  }
}
