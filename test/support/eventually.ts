import { vi } from 'vitest';

/** Retries the check until it stops throwing (vitest's waitFor), and answers what it returned. */
export function eventually<T>(check: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  return vi.waitFor(check, { timeout: timeoutMs, interval: 50 });
}
