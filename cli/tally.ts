#!/usr/bin/env -S npx tsx
import { BACKFILL_USAGE, runBackfill } from './backfill.js';
import { runSend, SEND_USAGE } from './send.js';

// `tally <command>`: the operator's and the load tester's tool.
const USAGE = `usage: tally <command> [options]

commands:
  send       send usage events through the billing client (smoke test, load generator)
  backfill   recompute a range of days from BigQuery into Postgres, with a progress bar

${SEND_USAGE}
${BACKFILL_USAGE}`;

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'send':
    process.exitCode = await runSend(rest);
    break;
  case 'backfill':
    process.exitCode = await runBackfill(rest);
    break;
  case undefined:
  case 'help':
  case '--help':
  case '-h':
    process.stdout.write(USAGE);
    break;
  default:
    process.stderr.write(`tally: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    process.exitCode = 2;
}
