import { Client, Connection } from '@temporalio/client';
import cliProgress from 'cli-progress';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { checkBackfillRange, startBackfill } from '../core/backfill.js';
import { loadConfig } from '../core/config.js';
import { workflowUrl } from '../core/temporal-links.js';
import { backfillProgress, type BackfillProgress } from '../workflows/backfill.js';

export const BACKFILL_USAGE = `tally backfill: recomputes a range of days from BigQuery into Postgres through Temporal.

  --from DAY     first day, YYYY-MM-DD
  --to DAY       last day, inclusive (default: --from)
  --detach       start it and return; the workflow goes on in Temporal
  --quiet        no progress bar

Runs as backfill-<from>-<to>: a worker crash resumes it, and running the same command again
follows the backfill already going instead of starting another. TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE and TEMPORAL_TASK_QUEUE say where (as for the worker).
`;

/** Runs `tally backfill`; resolves to the exit code. */
export async function runBackfill(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { from: { type: 'string' }, to: { type: 'string' }, detach: { type: 'boolean', default: false }, quiet: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`tally backfill: ${(err as Error).message}\n\n${BACKFILL_USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(BACKFILL_USAGE);
    return 0;
  }
  if (!values.from) {
    process.stderr.write(`tally backfill: --from is required\n\n${BACKFILL_USAGE}`);
    return 2;
  }
  const range = checkBackfillRange(values.from, values.to ?? values.from);
  if (!range.ok) {
    process.stderr.write(`tally backfill: --${range.error.field}: ${range.error.message}\n`);
    return 2;
  }
  const config = loadConfig();
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  try {
    const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
    const handle = await startBackfill(temporal, config.TEMPORAL_TASK_QUEUE, range.from, range.to);
    process.stderr.write(`${handle.workflowId}: ${workflowUrl(config.TEMPORAL_UI_URL, config.TEMPORAL_NAMESPACE, handle.workflowId)}\n`);
    if (values.detach) return 0;
    const bar = values.quiet ? null : new cliProgress.SingleBar({
      format: 'backfill {bar} {value}/{total} days | {current} | {changed} lines changed, {restated} restated | {duration_formatted}',
    }, cliProgress.Presets.shades_classic);
    const result = handle.result();
    let finished = false;
    result.then(() => { finished = true; }, () => { finished = true; });
    let last: BackfillProgress | undefined;
    while (!finished) {
      last = await handle.query(backfillProgress).catch(() => last);
      if (bar && last) {
        if (!bar.isActive) bar.start(last.total, last.done, { current: '', changed: 0, restated: 0 });
        bar.update(last.done, { current: last.current ?? 'done', changed: last.changed, restated: last.restated });
      }
      await Promise.race([result.catch(() => undefined), sleep(500)]);
    }
    const done = await result;
    bar?.update(done.done, { current: 'done', changed: done.changed, restated: done.restated });
    bar?.stop();
    process.stdout.write(`${JSON.stringify(done)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`tally backfill: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await connection.close();
  }
}
