import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createRequire } from 'node:module';
import type { Activities } from '../activities/index.js';

const require = createRequire(import.meta.url);

/** Where the workflow code is: a bundle made once (tests) or the source bundled at start. */
export type WorkflowSource = { workflowBundle: { codePath: string } } | { workflowsPath: string };

export const workflowsPath = require.resolve('../workflows/index.ts');

export async function createTallyWorker(opts: {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  activities: Activities;
  workflows?: WorkflowSource;
  identity?: string;
  /** How long running activities may finish after shutdown begins (the drainer's pass takes up to 10 s). */
  shutdownGraceTime?: string;
}): Promise<Worker> {
  const options: WorkerOptions = {
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    activities: opts.activities,
    ...(opts.identity ? { identity: opts.identity } : {}),
    ...(opts.workflows ?? { workflowsPath }),
    // Let running activities finish (or heartbeat-fail) on shutdown instead of being cut off.
    shutdownGraceTime: (opts.shutdownGraceTime ?? '10 seconds') as WorkerOptions['shutdownGraceTime'],
  };
  return Worker.create(options);
}

/**
 * The worker of the Zuora task queue: activities only, at most `maxPerSecond` of them started per
 * second across every worker of the queue (Temporal enforces it server-side), to stay within
 * Zuora's rate limits however many workers run.
 */
export async function createZuoraWorker(opts: {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  activities: Activities;
  maxPerSecond: number;
  shutdownGraceTime?: string;
}): Promise<Worker> {
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    activities: opts.activities,
    maxTaskQueueActivitiesPerSecond: opts.maxPerSecond,
    shutdownGraceTime: (opts.shutdownGraceTime ?? '10 seconds') as WorkerOptions['shutdownGraceTime'],
  });
}
