import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { invoiceRoutes } from './invoices.js';
import { organisationTrialRoutes } from './org-trial.js';
import { paymentMethodRoutes } from './payment-method.js';
import { thresholdRoutes } from './thresholds.js';
import { usageLineageRoutes } from './usage-lineage.js';
import { liveUsageRoutes } from './usage-live.js';
import { usageRoutes } from './usage.js';

/**
 * The customer-facing billing API: every route under /v1/organisations/:orgId, all behind the
 * organisation's token, applied here once so a route added to this family cannot forget it.
 */
export const billingRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addHook('onRoute', (route) => {
    // The token check compares the token's organisation with :orgId; a route without one would let any token through.
    if (!route.url.startsWith('/v1/organisations/:orgId/')) throw new Error(`billing route ${route.url} must be under /v1/organisations/:orgId/`);
  });
  app.addHook('onRequest', app.requireOrgToken);
  await app.register(usageRoutes);
  await app.register(liveUsageRoutes);
  await app.register(usageLineageRoutes);
  await app.register(paymentMethodRoutes);
  await app.register(organisationTrialRoutes);
  await app.register(invoiceRoutes);
  await app.register(thresholdRoutes);
};
