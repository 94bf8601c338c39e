/** The queue of Zuora calls beside a main task queue: its workers are rate-limited to Zuora's limits. */
export function zuoraTaskQueue(mainTaskQueue: string): string {
  return `${mainTaskQueue}-zuora`;
}
