import { sandboxSettingsFromEnv, type SandboxEnvSettings } from './env.js';
import { buildZuoraSandbox } from './server.js';

/**
 * Runs the Zuora sandbox on its own (`npm run zuora-sandbox`). Settings come from the environment
 * (zuora-sandbox/env.ts): host, port, client credentials, data file, the rate limit
 * (ZUORA_SANDBOX_RATE_LIMIT_PER_MINUTE) and faults on from the start (ZUORA_SANDBOX_LATENCY_MS,
 * ZUORA_SANDBOX_ERROR_RATE, ZUORA_SANDBOX_HANG_IMPORTS, ...).
 */
let settings: SandboxEnvSettings;
try {
  settings = sandboxSettingsFromEnv();
} catch (error) {
  const { code, message } = error as Error & { code?: string };
  console.error(JSON.stringify({ level: 'fatal', code: code ?? 'ZUORA_SANDBOX_SETTINGS', msg: message }));
  process.exit(1);
}

const app = await buildZuoraSandbox({
  clientId: settings.clientId,
  clientSecret: settings.clientSecret,
  dataFile: settings.dataFile,
  rateLimit: settings.rateLimit,
  faults: settings.faults,
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
  app.log.info({ url, dataFile: settings.dataFile ?? null, rateLimit: settings.rateLimit ?? 'Zuora default', faults: settings.faults }, 'Zuora sandbox listening');
} catch (error) {
  app.log.fatal({ err: error }, 'Zuora sandbox could not start');
  process.exit(1);
}
