import { buildZuoraSandbox } from './server.js';

/**
 * Runs the Zuora sandbox on its own (`npm run zuora-sandbox`). Settings come from the environment
 * with the defaults Tally's own config expects (core/config.ts: ZUORA_BASE_URL, ZUORA_CLIENT_*).
 */
const settings = {
  host: process.env.ZUORA_SANDBOX_HOST || '127.0.0.1',
  port: Number(process.env.ZUORA_SANDBOX_PORT || 8070),
  clientId: process.env.ZUORA_CLIENT_ID || 'tally-local',
  clientSecret: process.env.ZUORA_CLIENT_SECRET || 'tally-local-secret',
  dataFile: process.env.ZUORA_SANDBOX_DATA_FILE || undefined,
  logLevel: process.env.LOG_LEVEL || 'info',
};

if (!Number.isInteger(settings.port) || settings.port < 0 || settings.port > 65535) {
  console.error(JSON.stringify({ level: 'fatal', code: 'ZUORA_SANDBOX_PORT', msg: `ZUORA_SANDBOX_PORT must be a port number, not ${JSON.stringify(process.env.ZUORA_SANDBOX_PORT)}` }));
  process.exit(1);
}

const app = await buildZuoraSandbox({
  clientId: settings.clientId,
  clientSecret: settings.clientSecret,
  dataFile: settings.dataFile,
  logger: { level: settings.logLevel, base: { service: 'zuora-sandbox' } },
}).catch((error: Error & { code?: string }) => {
  // The logger lives inside the app, which does not exist yet: report in the same JSON shape.
  console.error(JSON.stringify({ level: 'fatal', code: error.code ?? 'ZUORA_SANDBOX_START', msg: error.message }));
  process.exit(1);
});

let closing = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'Zuora sandbox shutting down');
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        app.log.error({ err: error }, 'Zuora sandbox did not close cleanly');
        process.exit(1);
      },
    );
  });
}

try {
  const url = await app.listen({ host: settings.host, port: settings.port });
  app.log.info({ url, dataFile: settings.dataFile ?? null }, 'Zuora sandbox listening');
} catch (error) {
  app.log.fatal({ err: error }, 'Zuora sandbox could not start');
  process.exit(1);
}
