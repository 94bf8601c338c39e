import { TestWorkflowEnvironment } from '@temporalio/testing';
import { temporalTestServer } from '../../devstack/tools.js';
import './quiet-runtime.js';

/**
 * Temporal's time-skipping test server, from the binary bootstrap installed in the project's
 * venv (nothing is downloaded): month-long trial timers pass in milliseconds. The search
 * attributes the dev server registers at start (devstack/temporal.ts) are registered here too.
 */
export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: temporalTestServer } },
  });
  // IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD (@temporalio/proto is not a direct dependency).
  const keyword = 2;
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: { OrgId: keyword, BillingDay: keyword },
  });
  return env;
}
