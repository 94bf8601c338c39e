import { WorkflowIdConflictPolicy, type Client } from '@temporalio/client';
import { ingestDrainerWorkflowId } from '../core/ingest-drainer.js';
import { drainIngestOutboxWorkflow } from '../workflows/ingest.js';

/** Starts the task queue's outbox drainer, or leaves the running one be: safe at every worker start. */
export async function ensureIngestDrainer(client: Client, taskQueue: string): Promise<string> {
  const workflowId = ingestDrainerWorkflowId(taskQueue);
  await client.workflow.start(drainIngestOutboxWorkflow, {
    workflowId,
    taskQueue,
    args: [],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
  });
  return workflowId;
}
