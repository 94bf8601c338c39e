import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common';
import { parse } from 'yaml';
import { freePort } from '../devstack/process.js';
import { projectRoot } from '../devstack/tools.js';
import { eventually } from './support/eventually.js';
import { registerSearchAttributes } from './support/search-attributes.js';
import { apiProcessEnv, startTestTally, type TestTally } from './support/stack.js';

// `docker compose stop` sends SIGTERM to the service's command (behind tini, `init: true`). The
// command must be the process that stops gracefully: npx, for one, exits on SIGTERM without
// passing it on, and the container then ends with the API killed mid-request or the worker
// mid-activity. This runs the services' own commands from docker-compose.yml here and stops
// them the way compose does.

const compose = parse(fs.readFileSync(path.join(projectRoot, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, { command?: string[] }>;
};

let tally: TestTally;
/** Every command started, so that a test failing before its SIGTERM leaves nothing running. */
const started: ChildProcess[] = [];

beforeAll(async () => {
  tally = await startTestTally();
}, 90_000);

afterAll(async () => {
  for (const child of started) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is gone: nothing was left behind
    }
  }
  await tally?.close();
});

/** Runs a compose service's command in a process group of its own, with its output collected. */
function runServiceCommand(service: string, env: NodeJS.ProcessEnv): { child: ChildProcess; log: () => string } {
  const [command, ...args] = compose.services[service]!.command!;
  let log = '';
  // Its own process group, so that whatever it leaves behind can be cleaned up after the test.
  const child = spawn(command!, args, { cwd: projectRoot, detached: true, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  started.push(child);
  return { child, log: () => log };
}

/** SIGTERM, then: exit code 0, `message` logged, and nothing of its process group left. */
async function stopsGracefully(run: { child: ChildProcess; log: () => string }, message = 'shutting down'): Promise<void> {
  const { child, log } = run;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(log()).toContain(`"${message}"`);
  // Nothing of its process group is still running.
  await eventually(async () => expect(() => process.kill(-child.pid!, 0)).toThrow(), 5_000);
}

describe("the api service's compose command", () => {
  it('shuts the API down gracefully on SIGTERM and exits 0, leaving no process behind', async () => {
    const api = runServiceCommand('api', apiProcessEnv(tally, { API_PORT: String(await freePort()), FORWARD_ENABLED: 'false', LOG_LEVEL: 'info' }));
    await eventually(async () => expect(api.log()).toContain('"api listening"'), 60_000);
    await stopsGracefully(api);
  }, 90_000);
});

describe("the worker service's compose command", () => {
  it('shuts the worker down gracefully on SIGTERM and exits 0, leaving no process behind', async () => {
    // A namespace of its own: the worker creates Tally's Schedules, whose ids are fixed, and the
    // other test files share the dev server's namespace.
    const namespace = `shutdown-${randomBytes(4).toString('hex')}`;
    const connection = await Connection.connect({ address: tally.config.TEMPORAL_ADDRESS });
    try {
      await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
      await eventually(async () => connection.workflowService.describeNamespace({ namespace }));
      await registerSearchAttributes(connection, namespace);
    } finally {
      await connection.close();
    }
    const worker = runServiceCommand('worker', apiProcessEnv(tally, {
      TEMPORAL_NAMESPACE: namespace, WORKER_METRICS_PORT: String(await freePort()), LOG_LEVEL: 'info',
    }));
    await eventually(async () => expect(worker.log()).toContain('"worker started"'), 90_000);
    await stopsGracefully(worker);
    expect(worker.log()).toContain('"worker stopped"');
  }, 150_000);
});

describe("the zuora-sandbox service's compose command", () => {
  it('shuts the sandbox down gracefully on SIGTERM and exits 0, leaving no process behind', async () => {
    const port = await freePort();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-zuora-shutdown-'));
    try {
      const sandbox = runServiceCommand('zuora-sandbox', {
        ...process.env, ZUORA_SANDBOX_HOST: '127.0.0.1', ZUORA_SANDBOX_PORT: String(port), ZUORA_SANDBOX_DATA_FILE: path.join(dataDir, 'zuora.json'), LOG_LEVEL: 'info',
      });
      await eventually(async () => expect(sandbox.log()).toContain('"Zuora sandbox listening"'), 60_000);
      expect((await fetch(`http://127.0.0.1:${port}/sandbox/usage`)).status).toBe(200);
      await stopsGracefully(sandbox, 'Zuora sandbox shutting down');
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
