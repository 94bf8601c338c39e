import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { startWorkerService } from './service.js';

const config = loadConfig();
const logger = createLogger(config.LOG_LEVEL, 'tally-worker');
const service = await startWorkerService(config, logger);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'shutting down');
    void service.stop().then(() => process.exit(0));
  });
}
