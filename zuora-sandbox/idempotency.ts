import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ZuoraCode, ZuoraError, zuoraFailure } from './errors.js';
import type { SandboxState } from './state.js';

/** What a POST handler answers: Zuora often says `success: false` with HTTP 200, so both matter. */
export interface ZuoraAnswer {
  statusCode: number;
  body: unknown;
}

/** Zuora caps Idempotency-Key at 255 characters. */
const MAX_KEY_LENGTH = 255;

/** JSON with object keys sorted, so `{a,b}` and `{b,a}` are the same request. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The fingerprint of a JSON request body. */
export function fingerprintJson(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

/** The fingerprint of an upload: the file's bytes, since multipart boundaries differ per retry. */
export function fingerprintBytes(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Zuora's Idempotency-Key contract for POST: the first answer for a key (success or failure) is
 * kept for 24 hours and replayed to retries; the same key on a different request is 422, and a
 * retry that arrives while the first attempt still runs is 409.
 */
export class IdempotencyGuard {
  private readonly inFlight = new Set<string>();

  constructor(private readonly state: SandboxState) {}

  async answer(
    request: FastifyRequest,
    reply: FastifyReply,
    fingerprint: string,
    produce: () => Promise<ZuoraAnswer> | ZuoraAnswer,
  ): Promise<FastifyReply> {
    const key = request.headers['idempotency-key'];
    if (key === undefined) return send(reply, await settle(produce));
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
      return reply.code(400).send(
        zuoraFailure({ code: ZuoraCode.invalidValue, message: `Idempotency-Key must be one value of 1 to ${MAX_KEY_LENGTH} characters` }),
      );
    }

    const stored = this.state.findIdempotent(key);
    if (stored) {
      if (stored.method !== request.method || stored.url !== request.url || stored.fingerprint !== fingerprint) {
        return reply.code(422).send(
          zuoraFailure({
            code: ZuoraCode.ruleRestriction,
            message: `Idempotency-Key '${key}' was already used for a different request (${stored.method} ${stored.url}) within the last 24 hours`,
          }),
        );
      }
      return send(reply, { statusCode: stored.statusCode, body: stored.body });
    }

    if (this.inFlight.has(key)) {
      return reply.code(409).send(
        zuoraFailure({ code: ZuoraCode.lockingContention, message: `A request with Idempotency-Key '${key}' is still in progress` }),
      );
    }
    this.inFlight.add(key);
    try {
      const answer = await settle(produce);
      this.state.rememberIdempotent({
        key,
        method: request.method,
        url: request.url,
        fingerprint,
        statusCode: answer.statusCode,
        body: answer.body,
        createdAt: Date.now(),
      });
      return send(reply, answer);
    } finally {
      this.inFlight.delete(key);
    }
  }
}

/** A Zuora failure is an answer like any other (and is replayed); anything else is a server fault. */
async function settle(produce: () => Promise<ZuoraAnswer> | ZuoraAnswer): Promise<ZuoraAnswer> {
  try {
    return await produce();
  } catch (error) {
    if (error instanceof ZuoraError) return { statusCode: error.httpStatus, body: error.body() };
    throw error;
  }
}

function send(reply: FastifyReply, answer: ZuoraAnswer): FastifyReply {
  return reply.code(answer.statusCode).send(answer.body);
}
