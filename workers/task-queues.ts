import type { Config } from '../core/config.js';

/** Everything runs on one queue for now; Zuora calls get a rate-limited queue of their own later. */
export function taskQueue(config: Pick<Config, 'TEMPORAL_TASK_QUEUE'>): string {
  return config.TEMPORAL_TASK_QUEUE;
}
