import cliProgress from 'cli-progress';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import pino from 'pino';
import {
  BillingClient, BillingClientError, ContainerSeconds, billingArgOptions, configFromEnv, configFromParsedArgs, parseDuration,
  type RejectedStatus,
} from '../client/index.js';

export const SEND_USAGE = `tally send: sends N events at a target rate through the billing client, then reports.

  --url URL              ingest API (or --billing.ingester, BILLING_INGESTER)
  --api-key KEY          producer API key (or --billing.api-key, BILLING_API_KEY)
  --count N              events to send (default 1000)
  --rate R               target events per second; 0 for as fast as the client takes them (default 1000)
  --amount-type TYPE     default ${ContainerSeconds}
  --key-prefix PREFIX    unique keys are PREFIX<n> (default send-<random>-; reuse one to test dedupe)
  --instance ID          internal instance id (default tally-send-<hostname>)
  --at TIME              every event's timestamp, RFC 3339 (default: the start of the run); a rerun
                         with the same --key-prefix and --at is all duplicates, with another --at conflicts
  --stall DURATION       give up offering events when the buffer has had no room for this long
                         (the ingester is away); default 10s
  --json                 print the summary as JSON on stdout
  --quiet                no progress bar
  --billing.*            any billing client flag: max-buffered-events, batch-size, flush-interval,
                         retry-delay, request-timeout, close-deadline, overflow, spill-dir, gzip, ...
`;

const TICK_MS = 10;

/** Runs `tally send`; resolves to the exit code: 0 when every event was delivered. */
export async function runSend(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        ...billingArgOptions,
        url: { type: 'string' }, 'api-key': { type: 'string' }, count: { type: 'string', default: '1000' },
        rate: { type: 'string', default: '1000' }, 'amount-type': { type: 'string', default: ContainerSeconds },
        'key-prefix': { type: 'string' }, instance: { type: 'string' }, at: { type: 'string' },
        stall: { type: 'string', default: '10s' }, json: { type: 'boolean', default: false }, quiet: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`tally send: ${(err as Error).message}\n\n${SEND_USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(SEND_USAGE);
    return 0;
  }
  const count = Number(values.count);
  const rate = Number(values.rate);
  if (!Number.isSafeInteger(count) || count < 1) return usageError(`--count must be a whole number of at least 1, got ${values.count}`);
  if (!Number.isFinite(rate) || rate < 0) return usageError(`--rate must be a number of events per second (0: unlimited), got ${values.rate}`);
  const stallMs = parseDuration(values.stall);
  if (stallMs === undefined) return usageError(`--stall must be a duration such as 10s, got ${values.stall}`);
  const at = values.at === undefined ? new Date() : new Date(values.at);
  if (Number.isNaN(at.getTime())) return usageError(`--at must be an RFC 3339 time, got ${values.at}`);

  let client: BillingClient;
  const failures = new Map<RejectedStatus, { count: number; example: string }>();
  try {
    // Flags over environment over defaults; --url and --api-key are short for the billing flags.
    const config = configFromParsedArgs(
      { ...values, ...(values.url ? { 'billing.ingester': values.url } : {}), ...(values['api-key'] ? { 'billing.api-key': values['api-key'] } : {}) },
      configFromEnv(process.env),
    );
    client = new BillingClient({
      ...config,
      logger: pino({ name: 'tally-send', level: 'error' }, pino.destination(2)),
      onRejected: (event, status, reason) => {
        const f = failures.get(status) ?? { count: 0, example: `${event.uniqueKey}: ${reason}` };
        f.count++;
        failures.set(status, f);
      },
    });
  } catch (err) {
    if (err instanceof BillingClientError) return usageError(err.message);
    throw err;
  }

  const prefix = values['key-prefix'] ?? `send-${randomBytes(4).toString('hex')}-`;
  const instance = values.instance ?? `tally-send-${os.hostname()}`;
  const amountType = values['amount-type'];
  const bar = values.quiet ? undefined : new cliProgress.SingleBar({
    format: 'sending |{bar}| {value}/{total} events | {rate} ev/s | in memory {buffered} | failed {failed}',
    etaBuffer: 50,
  }, cliProgress.Presets.shades_classic);
  bar?.start(count, 0, { rate: 0, buffered: 0, failed: 0 });

  // Paced by the clock, not by sleeps: each tick adds what the target rate owes so far.
  const started = performance.now();
  let added = 0;
  let waitedForRoom = 0;
  let fullSince: number | undefined;
  while (added < count) {
    const owed = rate === 0 ? count : Math.min(count, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
    while (added < owed) {
      // A full buffer is back-pressure for a load generator: the same event is offered again next tick.
      if (client.addAmounts(`${prefix}${added}`, instance, at, { [amountType]: 1 + (added % 60) }) === 'buffer_full') {
        waitedForRoom++;
        fullSince ??= performance.now();
        break;
      }
      fullSince = undefined;
      added++;
    }
    if (fullSince !== undefined && performance.now() - fullSince > stallMs) break; // the rest is reported as not offered
    const seconds = (performance.now() - started) / 1000;
    bar?.update(added, { rate: Math.round(added / Math.max(seconds, 1e-3)), buffered: client.buffered, failed: failedCount(failures) });
    await sleep(TICK_MS);
  }
  const addSeconds = (performance.now() - started) / 1000;
  const report = await client.close();
  const totalSeconds = (performance.now() - started) / 1000;
  bar?.update(added, { rate: Math.round(added / addSeconds), buffered: 0, failed: failedCount(failures) + report.undelivered.length });
  bar?.stop();

  const byStatus = await eventsByStatus(client);
  const summary = {
    url: client.config.url, keyPrefix: prefix, count, targetRate: rate,
    achievedRate: Math.round(added / addSeconds), notOffered: count - added, deliveredRate: Math.round(((byStatus.accepted ?? 0) + (byStatus.duplicate ?? 0)) / totalSeconds),
    seconds: Number(totalSeconds.toFixed(3)),
    accepted: byStatus.accepted ?? 0, duplicate: byStatus.duplicate ?? 0,
    failed: Object.fromEntries([...failures].map(([status, f]) => [status, f.count])),
    failureExamples: Object.fromEntries([...failures].map(([status, f]) => [status, f.example])),
    undelivered: report.undelivered.length, spilled: report.spilled.length, waitedForRoom,
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    process.stdout.write(
      `sent ${added} of ${count} events to ${summary.url} in ${summary.seconds} s: ${summary.achievedRate} ev/s offered (target ${rate || 'unlimited'}), ` +
      `${summary.deliveredRate} ev/s delivered\n  accepted ${summary.accepted}, duplicate ${summary.duplicate}, undelivered ${summary.undelivered}` +
      `${summary.notOffered ? `, not offered ${summary.notOffered} (no room in the buffer for ${values.stall})` : ''}` +
      `${summary.spilled ? ` (${summary.spilled} kept in spill files)` : ''}\n` +
      [...failures].map(([status, f]) => `  ${status} ${f.count}, e.g. ${f.example}\n`).join(''),
    );
  }
  return failures.size === 0 && report.undelivered.length === 0 && added === count ? 0 : 1;
}

function failedCount(failures: Map<RejectedStatus, { count: number }>): number {
  let n = 0;
  for (const f of failures.values()) n += f.count;
  return n;
}

/** Events by status from the client's own counter; one amount type per event, so events, not amounts. */
async function eventsByStatus(client: BillingClient): Promise<Record<string, number>> {
  const sums: Record<string, number> = {};
  for (const v of (await client.registry.getSingleMetric('billing_client_events_total')!.get()).values) {
    const status = String(v.labels.status);
    sums[status] = (sums[status] ?? 0) + v.value;
  }
  return sums;
}

function usageError(message: string): number {
  process.stderr.write(`tally send: ${message}\n`);
  return 2;
}
