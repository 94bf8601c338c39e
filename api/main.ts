import cluster from 'node:cluster';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { runApiPrimary } from './cluster.js';
import { startApiService } from './service.js';

const config = loadConfig();
const logger = createLogger(config.LOG_LEVEL, 'tally-api');
if (config.API_PROCESSES > 1 && cluster.isPrimary) {
  runApiPrimary(config.API_PROCESSES, logger);
} else {
  const service = await startApiService(config, logger);
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
