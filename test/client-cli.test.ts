import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../devstack/tools.js';
import { startTestTally, type TestTally } from './support/stack.js';

// `tally send` as a user runs it: a child process against the real ingest API.

const exec = promisify(execFile);
const tsx = path.join(projectRoot, 'node_modules', '.bin', 'tsx');
const tallyCli = path.join(projectRoot, 'cli', 'tally.ts');
let tally: TestTally;
let apiUrl: string;
let apiKey: string;

beforeAll(async () => {
  tally = await startTestTally();
  apiUrl = await tally.app.listen({ port: 0, host: '127.0.0.1' });
  apiKey = tally.auth.authorization.slice('Bearer '.length);
});
afterAll(async () => {
  await tally?.close();
});

async function send(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(tsx, [tallyCli, 'send', ...args], { cwd: projectRoot, env: { ...process.env, BILLING_API_KEY: '' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('tally send', () => {
  it('sends N events at a target rate, reports the rate, and they arrive; a second run with the same keys is all duplicates', async () => {
    const prefix = `cli-${randomBytes(3).toString('hex')}-`;
    const args = ['--url', apiUrl, '--api-key', apiKey, '--count', '300', '--rate', '1000', '--key-prefix', prefix, '--at', new Date(Date.now() - 3_600_000).toISOString(), '--json', '--quiet', '--billing.batch-size', '100'];
    const first = await send(args);
    expect(first.code, first.stderr).toBe(0);
    const summary = JSON.parse(first.stdout);
    expect(summary).toMatchObject({ count: 300, targetRate: 1000, accepted: 300, duplicate: 0, failed: {}, undelivered: 0 });
    // 300 events at 1000/s take about 0.3 s to offer: the pacing holds the rate near the target.
    expect(summary.achievedRate).toBeGreaterThan(500);
    expect(summary.achievedRate).toBeLessThan(1300);
    const { rows } = await tally.db.query('SELECT count(*)::int AS n FROM event_keys WHERE event_key LIKE $1', [`${prefix}%`]);
    expect(rows[0].n).toBe(300);

    const again = JSON.parse((await send(args)).stdout);
    expect(again).toMatchObject({ accepted: 0, duplicate: 300, undelivered: 0 });
  });

  it('reports failures with a reason and exits 1; names a bad flag and exits 2', async () => {
    const bogus = await send(['--url', apiUrl, '--api-key', apiKey, '--count', '5', '--rate', '0', '--amount-type', 'bogus-seconds', '--quiet']);
    expect(bogus.code).toBe(1);
    expect(bogus.stdout).toMatch(/invalid 5, e\.g\. send-\w+-0: amounts\.bogus-seconds: .*unknown amount type/);

    const bad = await send(['--url', apiUrl, '--billing.retry-delay', 'soon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--billing.retry-delay must be a duration');
  });
});
