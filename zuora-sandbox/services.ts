import type { TokenStore } from './auth.js';
import type { FaultSwitches } from './faults.js';
import type { IdempotencyGuard } from './idempotency.js';
import type { UsageImporter } from './importer.js';
import type { RequestRateLimiter } from './rate-limit.js';
import type { SandboxState } from './state.js';

/** What the sandbox's route plugins are built from; `buildZuoraSandbox` makes one set per app. */
export interface SandboxServices {
  state: SandboxState;
  tokens: TokenStore;
  importer: UsageImporter;
  idempotency: IdempotencyGuard;
  faults: FaultSwitches;
  rateLimiter: RequestRateLimiter;
}
