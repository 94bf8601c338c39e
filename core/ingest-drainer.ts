/** The workflow that drains a task queue's ingest outbox into BigQuery: one per task queue. */
export function ingestDrainerWorkflowId(taskQueue: string): string {
  return `ingest-drainer-${taskQueue}`;
}
