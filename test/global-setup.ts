import { bundleWorkflowCode } from '@temporalio/worker';
import fs from 'node:fs';
import path from 'node:path';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { startLocalStack } from '../devstack/index.js';
import { projectRoot } from '../devstack/tools.js';
import { workflowsPath } from '../workers/worker.js';
import { buildZuoraSandbox } from '../zuora-sandbox/server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    stackEnv: Record<string, string>;
    workflowBundlePath: string;
  }
}

/**
 * Starts the real pieces once per run on free ports (Temporal dev server, embedded Postgres,
 * BigQuery emulator, Zuora sandbox) and bundles the workflows once. TALLY_TEST_STACK=none skips
 * it for tests that need none of them.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.TALLY_TEST_STACK === 'none') return async () => undefined;
  const dataDir = path.join(projectRoot, '.data', `test-${process.pid}`);
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o755 });

  const [stack, bundle, sandbox] = await Promise.all([
    startLocalStack({ dataDir, persistent: false, ports: 'free' }),
    bundleWorkflowCode({ workflowsPath, logger: quietLogger }),
    (async () => {
      const app = await buildZuoraSandbox({ clientId: 'tally-test', clientSecret: 'tally-test-secret', importStepMs: 20 });
      await app.listen({ host: '127.0.0.1', port: 0 });
      return app;
    })(),
  ]);
  const bundlePath = path.join(dataDir, 'workflow-bundle.js');
  fs.writeFileSync(bundlePath, bundle.code);
  const address = sandbox.server.address();
  const sandboxPort = typeof address === 'object' && address ? address.port : 0;

  project.provide('stackEnv', {
    ...stack.env,
    ZUORA_BASE_URL: `http://127.0.0.1:${sandboxPort}`,
    ZUORA_CLIENT_ID: 'tally-test',
    ZUORA_CLIENT_SECRET: 'tally-test-secret',
    ZUORA_IMPORT_POLL_MS: '50',
    LOG_LEVEL: 'warn',
  });
  project.provide('workflowBundlePath', bundlePath);

  return async () => {
    await sandbox.close();
    await stack.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
}

const quietLogger = {
  log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined,
  warn: (message: string) => console.warn(message), error: (message: string) => console.error(message),
};
