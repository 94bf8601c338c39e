import { Decoder, ExtensionCodec, encode } from '@msgpack/msgpack';
import { gunzipSync } from 'node:zlib';
import { isUtf8 } from 'node:buffer';
import { ForwardProtocolError, FrameReader, type FrameEncoding } from './framing.js';

/**
 * The Fluentd forward protocol, v1 (github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1),
 * as a stream of messages: Message, Forward, PackedForward and CompressedPackedForward modes in
 * msgpack, and the JSON form of Message and Forward that in_forward also takes, which is what the
 * Go billing client sends (fluent-logger-golang with MarshalAsJSON writes `["billing",<unix
 * seconds>,<record>,{}]` per record, back to back).
 */

/** One event of a message: its forward time (null when the sender left it 0) and its record. */
export interface ForwardEntry {
  /** Milliseconds since the epoch, from an integer, a float or an EventTime. */
  timeMs: number | null;
  record: unknown;
}

export interface ForwardOption {
  /** When present the sender waits for `{ack: chunk}` before it forgets the message. */
  chunk?: string;
  size?: number;
  compressed?: string;
}

export type ForwardMessage =
  | { kind: 'heartbeat' }
  | { kind: 'events'; encoding: FrameEncoding; mode: ForwardMode; tag: string; entries: ForwardEntry[]; option: ForwardOption };

export type ForwardMode = 'Message' | 'Forward' | 'PackedForward' | 'CompressedPackedForward';

export { ForwardProtocolError } from './framing.js';

/** The protocol's EventTime: msgpack ext type 0, 8 bytes, seconds and nanoseconds as big-endian uint32. */
export class EventTime {
  constructor(readonly seconds: number, readonly nanoseconds: number) {}
  get epochMs(): number {
    return this.seconds * 1000 + Math.floor(this.nanoseconds / 1e6);
  }
}

const extensionCodec = new ExtensionCodec();
extensionCodec.register({
  type: 0,
  encode: (value) => {
    if (!(value instanceof EventTime)) return null;
    const data = Buffer.alloc(8);
    data.writeUInt32BE(value.seconds, 0);
    data.writeUInt32BE(value.nanoseconds, 4);
    return data;
  },
  decode: (data) => {
    if (data.length !== 8) throw new ForwardProtocolError(`EventTime must be 8 bytes, got ${data.length}`);
    const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return new EventTime(view.readUInt32BE(0), view.readUInt32BE(4));
  },
});
// Go senders in msgpack mode (fluent-logger-golang without MarshalAsJSON) encode a time.Time
// field such as `occurred_at` with tinylib/msgp's ext 5: int64 seconds and int32 nanoseconds.
extensionCodec.register({
  type: 5,
  encode: () => null,
  decode: (data) => {
    if (data.length !== 12) throw new ForwardProtocolError(`msgp time must be 12 bytes, got ${data.length}`);
    const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return new Date(Number(view.readBigInt64BE(0)) * 1000 + Math.floor(view.readInt32BE(8) / 1e6));
  },
});

const decoder = new Decoder({ extensionCodec });
// A str-typed PackedForward (older senders) holds raw msgpack, which UTF-8 decoding would corrupt.
const rawDecoder = new Decoder({ extensionCodec, rawStrings: true });

function encodeForward(value: unknown): Buffer {
  const bytes = encode(value, { extensionCodec });
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** `{ack: chunk}` in the encoding the message came in: a JSON sender reads its ack as JSON. */
export function encodeAck(chunk: string, encoding: FrameEncoding): Buffer {
  return encoding === 'json' ? Buffer.from(JSON.stringify({ ack: chunk })) : encodeForward({ ack: chunk });
}

export class ForwardDecoder {
  private readonly frames: FrameReader;

  constructor(private readonly limits: { maxMessageBytes: number }) {
    this.frames = new FrameReader(limits.maxMessageBytes);
  }

  /** Yields the messages completed by `chunk`; throws ForwardProtocolError at the first bad one. */
  *push(chunk: Buffer): Generator<ForwardMessage> {
    for (const frame of this.frames.push(chunk)) {
      if (frame.kind === 'heartbeat') {
        yield frame;
        continue;
      }
      let message: ForwardMessage;
      try {
        // JSON must be UTF-8: read as text, invalid bytes would become U+FFFD, and two keys
        // differing only there would be claimed as one (api/plugins/json-body.ts).
        if (frame.encoding === 'json' && !isUtf8(frame.bytes)) throw new ForwardProtocolError('a JSON message must be UTF-8');
        const value = frame.encoding === 'json' ? JSON.parse(frame.bytes.toString('utf8')) : decoder.decode(frame.bytes);
        message = this.interpret(value, frame.encoding, frame.bytes);
      } catch (err) {
        if (err instanceof ForwardProtocolError) throw err;
        throw new ForwardProtocolError(`undecodable ${frame.encoding} message: ${(err as Error).message}`);
      }
      yield message;
    }
  }

  /** Call when the peer has closed: a half-sent message is an error worth logging. */
  finish(): void {
    if (this.frames.hasPartialMessage) throw new ForwardProtocolError('connection closed in the middle of a message');
  }

  private interpret(value: unknown, encoding: FrameEncoding, bytes: Buffer): ForwardMessage {
    if (!Array.isArray(value)) throw new ForwardProtocolError(`a message must be an array, got ${describe(value)}`);
    const [tag, second] = value;
    if (typeof tag !== 'string') throw new ForwardProtocolError(`the tag must be a string, got ${describe(tag)}`);
    if (Array.isArray(second)) {
      return { kind: 'events', encoding, mode: 'Forward', tag, entries: second.map(entry), option: option(value[2]) };
    }
    if (typeof second === 'string' || second instanceof Uint8Array) {
      if (encoding === 'json') throw new ForwardProtocolError('PackedForward exists only in msgpack');
      const opts = option(value[2]);
      let packed = second instanceof Uint8Array ? second : (rawDecoder.decode(bytes) as unknown[])[1] as Uint8Array;
      const mode: ForwardMode = opts.compressed === undefined || opts.compressed === 'text' ? 'PackedForward' : 'CompressedPackedForward';
      if (mode === 'CompressedPackedForward') {
        if (opts.compressed !== 'gzip') throw new ForwardProtocolError(`compressed "${opts.compressed}" is not supported (only gzip)`);
        packed = gunzip(packed, this.limits.maxMessageBytes);
      }
      const entries = [...decoder.decodeMulti(packed)].map(entry);
      return { kind: 'events', encoding, mode, tag, entries, option: opts };
    }
    if (value.length < 3 || value.length > 4) throw new ForwardProtocolError(`a Message-mode message has 3 or 4 elements, got ${value.length}`);
    return { kind: 'events', encoding, mode: 'Message', tag, entries: [{ timeMs: timeMs(second), record: value[2] }], option: option(value[3]) };
  }
}

function entry(value: unknown): ForwardEntry {
  if (!Array.isArray(value) || value.length !== 2) throw new ForwardProtocolError(`an entry must be [time, record], got ${describe(value)}`);
  return { timeMs: timeMs(value[0]), record: value[1] };
}

function timeMs(value: unknown): number | null {
  if (value instanceof EventTime) return value.epochMs;
  if (value instanceof Date) return value.getTime(); // msgpack's own timestamp ext (-1)
  if (typeof value === 'number' && Number.isFinite(value)) return value === 0 ? null : Math.floor(value * 1000);
  throw new ForwardProtocolError(`time must be an integer, a float or an EventTime, got ${describe(value)}`);
}

function option(value: unknown): ForwardOption {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    throw new ForwardProtocolError(`option must be a map, got ${describe(value)}`);
  }
  const { chunk, size, compressed } = value as Record<string, unknown>;
  if (chunk !== undefined && typeof chunk !== 'string') throw new ForwardProtocolError('option.chunk must be a string');
  if (compressed !== undefined && typeof compressed !== 'string') throw new ForwardProtocolError('option.compressed must be a string');
  return {
    ...(chunk !== undefined ? { chunk } : {}),
    ...(typeof size === 'number' ? { size } : {}),
    ...(compressed !== undefined ? { compressed } : {}),
  };
}

// Concatenated gzip members are allowed by the spec; zlib reads them all. The output is bounded
// so a small compressed message cannot expand into all of memory.
function gunzip(data: Uint8Array, maxBytes: number): Buffer {
  try {
    return gunzipSync(data, { maxOutputLength: maxBytes });
  } catch (err) {
    throw new ForwardProtocolError(`CompressedPackedForward entries: ${(err as Error).message}`);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'nil';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  return typeof value;
}
