import { TestWorkflowEnvironment } from '@temporalio/testing';
import { temporalTestServer } from '../../devstack/tools.js';
import './quiet-runtime.js';
import { registerSearchAttributes } from './search-attributes.js';

/**
 * Temporal's time-skipping test server, from the binary bootstrap installed in the project's
 * venv (nothing is downloaded): month-long trial timers pass in milliseconds. The search
 * attributes the dev server registers at start (devstack/temporal.ts) are registered here too.
 */
export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: temporalTestServer } },
  });
  await registerSearchAttributes(env.connection, env.namespace ?? 'default');
  return env;
}
