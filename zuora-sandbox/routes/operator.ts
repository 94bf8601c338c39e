import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { SandboxServices } from '../services.js';

/**
 * `/sandbox/*`: what a test or an operator needs to see or do and Zuora has no API for. No token
 * is needed; nothing here exists on the real Zuora, so no client code may depend on it.
 */
export const operatorRoutes: FastifyPluginAsyncTypebox<SandboxServices> = async (app, { state }) => {
  app.get('/health', async () => ({
    status: 'ok',
    accounts: state.allAccounts().length,
    usageRecords: state.allUsage().length,
    imports: state.allImports().length,
  }));

  /** Every usage record of every account, as stored (quantity as an exact decimal string). */
  app.get('/usage', async () => ({ usage: state.allUsage() }));

  /** Every import with its status, row count and what it did; the file's text is left out. */
  app.get('/imports', async () => ({
    imports: state.allImports().map(({ csv: _csv, failure: _failure, recordIds: _recordIds, ...usageImport }) => usageImport),
  }));

  /** Forgets accounts, usage, imports and idempotency keys. Issued tokens stay valid. */
  app.post('/reset', async () => {
    state.reset();
    return { reset: true };
  });
};
