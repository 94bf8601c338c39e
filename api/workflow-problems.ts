import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { workflowUrl } from '../core/temporal-links.js';
import { drainIngestOutboxWorkflow } from '../workflows/ingest.js';
import { BillingDayKey, OrgIdKey } from '../workflows/search-attributes.js';
import { trialWorkflow } from '../workflows/trial.js';

/**
 * Tally's workflows that need an operator, found through Temporal's visibility store: runs that
 * ended badly, and runs that have been going for longer than any day's work should take.
 */

/** Runs meant to live for months: never "stuck", however old. */
const ENTITY_WORKFLOW_TYPES = [trialWorkflow.name, drainIngestOutboxWorkflow.name];

/** HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT: only the event that closed the run. */
const CLOSE_EVENT_ONLY = 2;

export interface ProblemWorkflow {
  workflowId: string;
  runId: string;
  type: string;
  status: string;
  taskQueue: string;
  startTime: string;
  closeTime: string | null;
  billingDay: string | null;
  orgId: string | null;
  /** Why it ended: the failure's messages, the termination's reason, or the timeout. */
  reason: string | null;
  /** This run (not a later one of the same id) in the Temporal UI. */
  temporalUrl: string;
}

export interface ProblemSearch {
  temporal: Client;
  namespace: string;
  taskQueue: string;
  uiUrl: string;
}

/** Visibility queries take literals: a quote in the task queue name must not end the string. */
const literal = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

export async function failedWorkflows(search: ProblemSearch, sinceDays: number, limit: number): Promise<ProblemWorkflow[]> {
  const since = new Date(Date.now() - sinceDays * 86_400_000).toISOString();
  const query = `TaskQueue = ${literal(search.taskQueue)} AND ExecutionStatus IN ('Failed', 'TimedOut', 'Terminated') AND CloseTime > '${since}'`;
  const runs = await listRuns(search, query, limit);
  // One small read per run (its close event only), a few at a time.
  const reasons: (string | null)[] = [];
  for (let i = 0; i < runs.length; i += 8) {
    reasons.push(...await Promise.all(runs.slice(i, i + 8).map((run) => closeReason(search, run))));
  }
  return runs.map((run, i) => describe(search, run, reasons[i] ?? null));
}

export async function stuckWorkflows(search: ProblemSearch, olderThanMinutes: number, limit: number): Promise<ProblemWorkflow[]> {
  const startedBefore = new Date(Date.now() - olderThanMinutes * 60_000).toISOString();
  const query = `TaskQueue = ${literal(search.taskQueue)} AND ExecutionStatus = 'Running' AND StartTime < '${startedBefore}'`
    + ` AND WorkflowType NOT IN (${ENTITY_WORKFLOW_TYPES.map(literal).join(', ')})`;
  return (await listRuns(search, query, limit)).map((run) => describe(search, run, null));
}

async function listRuns(search: ProblemSearch, query: string, limit: number): Promise<WorkflowExecutionInfo[]> {
  const runs: WorkflowExecutionInfo[] = [];
  for await (const run of search.temporal.workflow.list({ query, pageSize: Math.min(limit, 1000) })) {
    runs.push(run);
    if (runs.length >= limit) break;
  }
  return runs;
}

function describe(search: ProblemSearch, run: WorkflowExecutionInfo, reason: string | null): ProblemWorkflow {
  return {
    workflowId: run.workflowId,
    runId: run.runId,
    type: run.type,
    status: run.status.name,
    taskQueue: run.taskQueue,
    startTime: run.startTime.toISOString(),
    closeTime: run.closeTime?.toISOString() ?? null,
    billingDay: run.typedSearchAttributes.get(BillingDayKey) ?? null,
    orgId: run.typedSearchAttributes.get(OrgIdKey) ?? null,
    reason,
    temporalUrl: `${workflowUrl(search.uiUrl, search.namespace, run.workflowId)}/${encodeURIComponent(run.runId)}/history`,
  };
}

interface FailureInfo { message?: string | null; cause?: FailureInfo | null }

async function closeReason(search: ProblemSearch, run: WorkflowExecutionInfo): Promise<string | null> {
  const { history } = await search.temporal.workflowService.getWorkflowExecutionHistory({
    namespace: search.namespace,
    execution: { workflowId: run.workflowId, runId: run.runId },
    historyEventFilterType: CLOSE_EVENT_ONLY,
  });
  const event = history?.events?.at(-1);
  if (!event) return null;
  if (event.workflowExecutionFailedEventAttributes) return failureChain(event.workflowExecutionFailedEventAttributes.failure);
  if (event.workflowExecutionTerminatedEventAttributes) {
    const { reason, identity } = event.workflowExecutionTerminatedEventAttributes;
    return `terminated${identity ? ` by ${identity}` : ''}: ${reason || 'no reason given'}`;
  }
  if (event.workflowExecutionTimedOutEventAttributes) return 'the run exceeded its execution or run timeout';
  return null;
}

/** "Activity task failed: organisation x is not registered": each cause adds what the outer message leaves out. */
function failureChain(failure: FailureInfo | null | undefined): string | null {
  const messages: string[] = [];
  for (let f = failure; f; f = f.cause) if (f.message) messages.push(f.message);
  return messages.length ? messages.join(': ') : null;
}
