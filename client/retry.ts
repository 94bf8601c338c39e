/**
 * The retry timing of a batch. Hand-written rather than p-retry: the next delay must come from
 * the server's Retry-After when it sends one, the jitter is "full jitter" (uniform in
 * [0, cap)), and the wait must end at the close() deadline; p-retry offers none of the three.
 */

/** Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): spreads retries of many producers after an outage. */
export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, baseMs * 2 ** attempt);
  return Math.floor(random() * cap);
}

/**
 * A Retry-After header in milliseconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
 * Undefined when absent or unreadable, so the caller falls back to its own backoff.
 */
export function retryAfterMs(header: string | null, now: number = Date.now()): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
