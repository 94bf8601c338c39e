import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { setNiceness } from '../core/niceness.js';
import { startWorkerService } from './service.js';

const config = loadConfig();
const logger = createLogger(config.LOG_LEVEL, 'tally-worker');
// Background work gives way to the API's answers on a shared host (WORKER_NICENESS; docs/ingest.md).
const threads = setNiceness(process.pid, config.WORKER_NICENESS);
logger.info({ niceness: config.WORKER_NICENESS, threads }, 'worker niceness set');
const service = await startWorkerService(config, logger);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'shutting down');
    void service.stop().then(() => process.exit(0));
  });
}
