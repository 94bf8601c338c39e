import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import type { ClientMetrics, RequestOutcome } from './metrics.js';
import { retryAfterMs } from './retry.js';
import type { WireEvent } from './usage-event.js';

/** The server's answer for one event, in request order. */
export interface EventResult {
  status: 'accepted' | 'duplicate' | 'conflict' | 'invalid';
  uniqueKey?: string;
  field?: string;
  reason?: string;
}

/** How one POST of a batch ended, already sorted into what the sender does next. */
export type PostResult =
  /** Every event has its own answer (a 2xx, or a 400 where every event was invalid). */
  | { kind: 'answered'; results: EventResult[] }
  /** The server refused the request as a whole and will refuse it again: do not retry. */
  | { kind: 'refused'; httpStatus: number; reason: string }
  /** Nothing is known to be kept (or a retry is deduplicated anyway): send the same batch again. */
  | { kind: 'retry'; reason: string; retryAfterMs?: number }
  /** The close() deadline cut the request off. */
  | { kind: 'aborted' };

export interface TransportOptions {
  endpoint: URL;
  apiKey?: string;
  requestTimeoutMs: number;
  /** Gzip the body: JSON events shrink about tenfold, and the API decodes Content-Encoding: gzip. */
  gzip: boolean;
  fetch: typeof globalThis.fetch;
  metrics: ClientMetrics;
}

const STATUSES = new Set(['accepted', 'duplicate', 'conflict', 'invalid']);
// The async form runs on libuv's pool: compressing a batch never stalls the producer's event loop.
const gzip = promisify(gzipCallback);

/** POSTs batches to the ingest API and classifies the answer. Never throws. */
export class IngestTransport {
  constructor(private readonly opts: TransportOptions) {}

  async post(batch: readonly WireEvent[], abandon: AbortSignal): Promise<PostResult> {
    const started = performance.now();
    const timeout = AbortSignal.timeout(this.opts.requestTimeoutMs);
    let outcome: RequestOutcome;
    let result: PostResult;
    try {
      const json = JSON.stringify({ events: batch });
      const body = this.opts.gzip ? await gzip(json, { level: 6 }) : json;
      const res = await this.opts.fetch(this.opts.endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(this.opts.gzip ? { 'content-encoding': 'gzip' } : {}),
          'user-agent': 'tally-billing-client/0.1',
          ...(this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {}),
        },
        body,
        signal: AbortSignal.any([timeout, abandon]),
      });
      // Always read the body: an unread body holds the connection, and the body explains a refusal.
      const text = await res.text();
      [outcome, result] = classify(res.status, res.headers.get('retry-after'), text, batch.length);
    } catch (err) {
      if (abandon.aborted) [outcome, result] = ['aborted', { kind: 'aborted' }];
      else if (timeout.aborted) {
        [outcome, result] = ['timeout', { kind: 'retry', reason: `no answer within ${this.opts.requestTimeoutMs} ms` }];
      } else {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        const reason = cause?.code ?? cause?.message ?? (err as Error).message;
        [outcome, result] = ['network_error', { kind: 'retry', reason: `network error: ${reason}` }];
      }
    }
    this.opts.metrics.requests.inc({ outcome });
    this.opts.metrics.requestSeconds.observe({ outcome }, (performance.now() - started) / 1000);
    return result;
  }
}

function classify(status: number, retryAfter: string | null, text: string, count: number): [RequestOutcome, PostResult] {
  const body = parseJson(text);
  if (status >= 200 && status < 300) {
    const results = perEventResults(body, count);
    // A 2xx whose answer we cannot read: resending is safe, the keys make it a duplicate.
    return results ? ['ok', { kind: 'answered', results }] : ['bad_response', { kind: 'retry', reason: `HTTP ${status} without a result per event` }];
  }
  const wait = retryAfterMs(retryAfter);
  const because = describe(status, body, text);
  if (status === 429) return ['throttled', { kind: 'retry', reason: because, ...(wait !== undefined ? { retryAfterMs: wait } : {}) }];
  if (status === 503) return ['unavailable', { kind: 'retry', reason: because, ...(wait !== undefined ? { retryAfterMs: wait } : {}) }];
  if (status >= 500 || status === 408) return ['server_error', { kind: 'retry', reason: because, ...(wait !== undefined ? { retryAfterMs: wait } : {}) }];
  if (status === 400) {
    const results = perEventResults(body, count);
    if (results) return ['rejected', { kind: 'answered', results }];
  }
  return ['client_error', { kind: 'refused', httpStatus: status, reason: because }];
}

function perEventResults(body: unknown, count: number): EventResult[] | undefined {
  const results = (body as { results?: unknown } | undefined)?.results;
  if (!Array.isArray(results) || results.length !== count) return undefined;
  const ordered: EventResult[] = new Array(count);
  for (const [position, r] of results.entries()) {
    const index = typeof r?.index === 'number' ? r.index : position;
    if (!STATUSES.has(r?.status) || index < 0 || index >= count || !Number.isInteger(index)) return undefined;
    ordered[index] = r as EventResult;
  }
  // Every event must have its answer; one missing would leave its fate unknown.
  for (let i = 0; i < count; i++) if (ordered[i] === undefined) return undefined;
  return ordered;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined; // not JSON (a proxy's HTML error page): the status code speaks alone
  }
}

// The API's errors are { code, message }; keep them, since they are what a person acts on.
function describe(status: number, body: unknown, text: string): string {
  const { code, message } = (body ?? {}) as { code?: unknown; message?: unknown };
  if (typeof message === 'string') return `HTTP ${status}${typeof code === 'string' ? ` ${code}` : ''}: ${message}`;
  return `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`;
}
