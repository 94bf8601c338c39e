import cluster from 'node:cluster';
import v8 from 'node:v8';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { listenFailure, runApiPrimary, START_FAILED_FOR_GOOD } from './cluster.js';
import { startApiService } from './service.js';

const config = loadConfig();
const logger = createLogger(config.LOG_LEVEL, 'tally-api');
// Before the process allocates for requests; V8 reads it at each full collection (docs/ingest.md).
if (config.API_HEAP_GROWING_PERCENT > 0) v8.setFlagsFromString(`--heap-growing-percent=${config.API_HEAP_GROWING_PERCENT}`);
if (config.API_PROCESSES > 1 && cluster.isPrimary) {
  runApiPrimary(config.API_PROCESSES, logger);
} else {
  let service;
  try {
    service = await startApiService(config, logger);
  } catch (err) {
    const cannotListen = listenFailure(err, config);
    logger.fatal({ err }, cannotListen ?? 'the api could not start');
    // A port that is taken stays taken: a cluster's primary stops rather than start this again (api/cluster.ts).
    process.exit(cannotListen ? START_FAILED_FOR_GOOD : 1);
  }
  logger.info({ url: service.url, pid: process.pid }, 'api listening');
  let stopping: Promise<void> | undefined;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    // Ctrl-C reaches a cluster's processes and its primary, which then sends SIGTERM: stop once.
    process.on(signal, () => {
      logger.info({ signal }, 'shutting down');
      stopping ??= service.stop().then(() => process.exit(0));
    });
  }
}
