import cluster, { type Worker } from 'node:cluster';
import client from 'prom-client';
import type { Logger } from '../core/logger.js';

// API_PROCESSES > 1: a primary process forks that many API processes, which share the HTTP and
// forward ports (node:cluster hands connections round-robin). The primary serves nothing itself:
// it restarts a process that dies, stops them all in order, and sums their metrics so that a
// scrape of /metrics on any of them sees the whole API (docs/ingest.md, "API processes").

const METRICS_REQUEST = 'tally:cluster-metrics-request';
const METRICS_RESPONSE = 'tally:cluster-metrics-response';

interface MetricsRequest { type: typeof METRICS_REQUEST; id: number }
interface MetricsResponse { type: typeof METRICS_RESPONSE; id: number; text?: string; error?: string }

/** A dead API process is started again after this long, so a crash loop does not spin. */
const RESTART_DELAY_MS = 1_000;

/**
 * The exit code of an API process that cannot start and would not on a second try either (its
 * port is taken, or not its to take): the primary then stops the others and exits, rather than
 * start it again every second for ever. 78 is sysexits' EX_CONFIG.
 */
export const START_FAILED_FOR_GOOD = 78;

/** For an error of `listen`: which port could not be had and why, naming its variable; undefined for any other error. */
export function listenFailure(err: unknown, config: { API_PORT: number; FORWARD_PORT: number; FORWARD_ENABLED: boolean }): string | undefined {
  const e = err as { code?: unknown; port?: unknown; syscall?: unknown };
  if (e?.syscall !== 'listen' && e?.syscall !== 'bind') return undefined;
  if (e.code !== 'EADDRINUSE' && e.code !== 'EACCES') return undefined;
  const port = Number(e.port);
  const variable = port === config.API_PORT ? 'API_PORT' : config.FORWARD_ENABLED && port === config.FORWARD_PORT ? 'FORWARD_PORT' : undefined;
  const why = e.code === 'EADDRINUSE' ? 'is already in use' : 'may not be opened by this user';
  return `port ${port}${variable ? ` (${variable})` : ''} ${why}: stop what holds it, or set ${variable ?? 'the port'} to another`;
}

export function runApiPrimary(processes: number, logger: Logger): void {
  const aggregator = new client.AggregatorRegistry();
  let stopping = false;
  const fork = () => {
    const worker = cluster.fork();
    worker.on('message', (message: MetricsRequest) => {
      if (message?.type !== METRICS_REQUEST) return;
      aggregator.clusterMetrics().then(
        (text) => reply(worker, { type: METRICS_RESPONSE, id: message.id, text }),
        (err: Error) => reply(worker, { type: METRICS_RESPONSE, id: message.id, error: err.message }),
      );
    });
  };
  let exitCode = 0;
  const stopAll = () => {
    stopping = true;
    // Each finishes what it took (service.stop) and exits; the last exit ends the primary.
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(exitCode);
  };
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(exitCode);
      return;
    }
    if (code === START_FAILED_FOR_GOOD) {
      logger.fatal({ pid: worker.process.pid, code }, 'an api process cannot start (its error is logged above); stopping the others');
      exitCode = 1;
      stopAll();
      return;
    }
    logger.error({ pid: worker.process.pid, code, signal }, 'api process died; starting another');
    setTimeout(() => stopping || fork(), RESTART_DELAY_MS);
  });
  for (let i = 0; i < processes; i++) fork();
  logger.info({ processes }, 'api processes started');
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'stopping the api processes');
      stopAll();
    });
  }
}

function reply(worker: Worker, message: MetricsResponse): void {
  if (worker.isConnected()) worker.send(message);
}

/** In an API process of a cluster: answer the primary's collections with this registry. */
export function shareMetricsWithPrimary(registry: client.Registry): void {
  client.AggregatorRegistry.setRegistries([registry]);
  // Constructing one installs prom-client's listener that answers the primary's requests.
  new client.AggregatorRegistry();
}

let nextRequest = 0;

/** In an API process of a cluster: the metrics of every API process, summed by the primary. */
export function clusterMetrics(timeoutMs = 10_000): Promise<string> {
  const id = nextRequest++;
  return new Promise((resolve, reject) => {
    const onMessage = (message: MetricsResponse) => {
      if (message?.type !== METRICS_RESPONSE || message.id !== id) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      if (message.error !== undefined) reject(new Error(`metrics of the api processes: ${message.error}`));
      else resolve(message.text ?? '');
    };
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error('the primary api process did not answer for metrics'));
    }, timeoutMs);
    process.on('message', onMessage);
    process.send!({ type: METRICS_REQUEST, id } satisfies MetricsRequest);
  });
}
