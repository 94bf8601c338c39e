import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { startApiService } from './service.js';

const config = loadConfig();
const logger = createLogger(config.LOG_LEVEL, 'tally-api');
const service = await startApiService(config, logger);
logger.info({ url: service.url }, 'api listening');
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'shutting down');
    void service.stop().then(() => process.exit(0));
  });
}
