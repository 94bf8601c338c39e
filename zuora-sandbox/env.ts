import type { FaultSettings } from './faults.js';
import type { RateLimitOptions } from './rate-limit.js';

/** The standalone sandbox's settings (`zuora-sandbox/main.ts`), read from the environment. */
export interface SandboxEnvSettings {
  host: string;
  port: number;
  clientId: string;
  clientSecret: string;
  dataFile?: string;
  logLevel: string;
  rateLimit?: RateLimitOptions;
  faults: FaultSettings;
}

/** A setting the sandbox cannot start with; `code` names the variable. */
export class SandboxEnvError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SandboxEnvError';
  }
}

function numberFrom(env: NodeJS.ProcessEnv, name: string, check: { min: number; max: number; integer: boolean }): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < check.min || value > check.max || (check.integer && !Number.isInteger(value))) {
    const kind = check.integer ? 'a whole number' : 'a number';
    throw new SandboxEnvError(name, `${name} must be ${kind} from ${check.min} to ${check.max}, not ${JSON.stringify(raw)}`);
  }
  return value;
}

function flagFrom(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = (env[name] ?? '').toLowerCase();
  if (raw === '' || raw === 'false' || raw === '0') return false;
  if (raw === 'true' || raw === '1') return true;
  throw new SandboxEnvError(name, `${name} must be true or false, not ${JSON.stringify(env[name])}`);
}

/**
 * Defaults match what Tally's own config expects (core/config.ts: ZUORA_BASE_URL, ZUORA_CLIENT_*).
 * Faults from the environment are on from the start; `/sandbox/faults` changes them later.
 */
export function sandboxSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): SandboxEnvSettings {
  const port = numberFrom(env, 'ZUORA_SANDBOX_PORT', { min: 0, max: 65535, integer: true }) ?? 8070;
  const perMinute = numberFrom(env, 'ZUORA_SANDBOX_RATE_LIMIT_PER_MINUTE', { min: 1, max: 10_000_000, integer: true });
  const authPerMinute = numberFrom(env, 'ZUORA_SANDBOX_AUTH_RATE_LIMIT_PER_MINUTE', { min: 1, max: 10_000_000, integer: true });

  const faults: FaultSettings = {};
  const latencyMs = numberFrom(env, 'ZUORA_SANDBOX_LATENCY_MS', { min: 0, max: 600_000, integer: true });
  if (latencyMs) faults.latencyMs = latencyMs;
  const errorRate = numberFrom(env, 'ZUORA_SANDBOX_ERROR_RATE', { min: 0, max: 1, integer: false });
  if (errorRate) faults.errorRate = errorRate;
  const errorStatus = numberFrom(env, 'ZUORA_SANDBOX_ERROR_STATUS', { min: 500, max: 503, integer: true });
  if (errorStatus !== undefined) {
    if (errorStatus !== 500 && errorStatus !== 503) throw new SandboxEnvError('ZUORA_SANDBOX_ERROR_STATUS', 'ZUORA_SANDBOX_ERROR_STATUS must be 500 or 503');
    faults.errorStatus = errorStatus;
  }
  if (flagFrom(env, 'ZUORA_SANDBOX_HANG_IMPORTS')) faults.hangImports = true;
  const paths = (env.ZUORA_SANDBOX_FAULT_PATHS ?? '').split(',').map((p) => p.trim()).filter(Boolean);
  if (paths.length > 0) faults.paths = paths;

  return {
    host: env.ZUORA_SANDBOX_HOST || '127.0.0.1',
    port,
    clientId: env.ZUORA_CLIENT_ID || 'tally-local',
    clientSecret: env.ZUORA_CLIENT_SECRET || 'tally-local-secret',
    dataFile: env.ZUORA_SANDBOX_DATA_FILE || undefined,
    logLevel: env.LOG_LEVEL || 'info',
    ...(perMinute !== undefined || authPerMinute !== undefined
      ? { rateLimit: { requestsPerWindow: perMinute ?? 50_000, windowMs: 60_000, ...(authPerMinute !== undefined ? { authRequestsPerWindow: authPerMinute } : {}) } }
      : {}),
    faults,
  };
}
