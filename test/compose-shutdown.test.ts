import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { freePort } from '../devstack/process.js';
import { projectRoot } from '../devstack/tools.js';
import { eventually } from './support/eventually.js';
import { apiProcessEnv, startTestTally, type TestTally } from './support/stack.js';

// `docker compose stop` sends SIGTERM to the service's command (behind tini, `init: true`). The
// command must be the process that stops gracefully: npx, for one, exits on SIGTERM without
// passing it on, and the container then ends with the API killed mid-request. This runs the api
// service's own command from docker-compose.yml here and stops it the way compose does.

const compose = parse(fs.readFileSync(path.join(projectRoot, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, { command?: string[] }>;
};

let tally: TestTally;
let api: ChildProcess;
let log = '';

beforeAll(async () => {
  tally = await startTestTally();
  const [command, ...args] = compose.services.api!.command!;
  api = spawn(command!, args, {
    cwd: projectRoot,
    // Its own process group, so that whatever it leaves behind can be cleaned up after the test.
    detached: true,
    env: apiProcessEnv(tally, { API_PORT: String(await freePort()), FORWARD_ENABLED: 'false', LOG_LEVEL: 'info' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  api.stdout!.on('data', (d) => (log += d));
  api.stderr!.on('data', (d) => (log += d));
  await eventually(async () => expect(log).toContain('"api listening"'), 60_000);
}, 90_000);

afterAll(async () => {
  try {
    process.kill(-api.pid!, 'SIGKILL');
  } catch {
    // the group is gone: nothing was left behind
  }
  await tally?.close();
});

describe("the api service's compose command", () => {
  it('shuts the API down gracefully on SIGTERM and exits 0, leaving no process behind', async () => {
    const exited = new Promise<number | null>((resolve) => api.once('exit', (code) => resolve(code)));
    api.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(log).toContain('"shutting down"');
    // Nothing of its process group is still running.
    await eventually(async () => expect(() => process.kill(-api.pid!, 0)).toThrow(), 5_000);
  }, 30_000);
});
