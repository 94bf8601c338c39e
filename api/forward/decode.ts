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

/**
 * Map keys decoded by `utf8Text`, the short ones cached by their bytes: a record's field names are
 * the same in every record (the library's own key decoder does the same, without the UTF-8 check).
 */
class MapKeys {
  private readonly byLength: { bytes: Uint8Array; text: string }[][] = Array.from({ length: 32 }, () => []);

  canBeCached(): boolean {
    return true;
  }

  decode(bytes: Uint8Array, start: number, length: number): string {
    if (length === 0 || length > 32) return utf8Text(bytes, start, length);
    const cached = this.byLength[length - 1]!;
    next: for (const entry of cached) {
      for (let j = 0; j < length; j++) if (entry.bytes[j] !== bytes[start + j]) continue next;
      return entry.text;
    }
    const text = utf8Text(bytes, start, length);
    // A bounded cache: a sender's metadata names may be many; the first 16 of each length stay.
    if (cached.length < 16) cached.push({ bytes: bytes.slice(start, start + length), text });
    return text;
  }
}

/**
 * msgpack's str is UTF-8, but the library reads invalid bytes leniently: as Latin-1 code units in a
 * short string (an overlong `C1 81` becomes "A"), as U+FFFD in a long one. Either way two keys that
 * differ only there would be claimed as one, and the second event lost as a `duplicate`. So every
 * str arrives as its bytes (`rawStrings`; map keys through `MapKeys`), and `utf8Text` decodes
 * them: valid UTF-8 as it is, invalid bytes each as a lone surrogate, U+DC00 + the byte (Python's
 * "surrogateescape"), so a string that was not UTF-8 is never well-formed and the event's
 * validation refuses the field it is in (`validateEvent`). A bin is read the same way as a str.
 */
const decoder = new Decoder({ extensionCodec, rawStrings: true, keyDecoder: new MapKeys() });

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
        const value = frame.encoding === 'json' ? JSON.parse(frame.bytes.toString('utf8')) : decoder.decode(plain(frame.bytes));
        message = this.interpret(value, frame.encoding);
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

  private interpret(value: unknown, encoding: FrameEncoding): ForwardMessage {
    if (!Array.isArray(value)) throw new ForwardProtocolError(`a message must be an array, got ${describe(value)}`);
    const [rawTag, second] = value;
    const tag = rawTag instanceof Uint8Array ? utf8Text(rawTag) : rawTag;
    if (typeof tag !== 'string') throw new ForwardProtocolError(`the tag must be a string, got ${describe(tag)}`);
    if (Array.isArray(second)) {
      return { kind: 'events', encoding, mode: 'Forward', tag, entries: second.map((e) => entry(e, encoding)), option: option(value[2]) };
    }
    if (typeof second === 'string') throw new ForwardProtocolError('PackedForward exists only in msgpack');
    // msgpack's str and bin both arrive as bytes (above).
    if (second instanceof Uint8Array) {
      const opts = option(value[2]);
      let packed = second;
      const mode: ForwardMode = opts.compressed === undefined || opts.compressed === 'text' ? 'PackedForward' : 'CompressedPackedForward';
      if (mode === 'CompressedPackedForward') {
        if (opts.compressed !== 'gzip') throw new ForwardProtocolError(`compressed "${opts.compressed}" is not supported (only gzip)`);
        packed = gunzip(packed, this.limits.maxMessageBytes);
      }
      const entries = [...decoder.decodeMulti(plain(packed))].map((e) => entry(e, encoding));
      return { kind: 'events', encoding, mode, tag, entries, option: opts };
    }
    if (value.length < 3 || value.length > 4) throw new ForwardProtocolError(`a Message-mode message has 3 or 4 elements, got ${value.length}`);
    return { kind: 'events', encoding, mode: 'Message', tag, entries: [entry([second, value[2]], encoding)], option: option(value[3]) };
  }
}

function entry(value: unknown, encoding: FrameEncoding): ForwardEntry {
  if (!Array.isArray(value) || value.length !== 2) throw new ForwardProtocolError(`an entry must be [time, record], got ${describe(value)}`);
  // A JSON record holds strings already (checked as UTF-8 with its message); msgpack's hold bytes.
  return { timeMs: timeMs(value[0]), record: encoding === 'msgpack' ? texts(value[1]) : value[1] };
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
  const { size } = value as Record<string, unknown>;
  const chunk = optionText(value, 'chunk');
  const compressed = optionText(value, 'compressed');
  return {
    ...(chunk !== undefined ? { chunk } : {}),
    ...(typeof size === 'number' ? { size } : {}),
    ...(compressed !== undefined ? { compressed } : {}),
  };
}

// The chunk goes back in the ack, where the sender compares it with what it sent: it must be
// UTF-8 to come back as the same bytes.
function optionText(option: object, name: 'chunk' | 'compressed'): string | undefined {
  const value = (option as Record<string, unknown>)[name];
  const text = value instanceof Uint8Array ? utf8Text(value) : value;
  if (text === undefined) return undefined;
  if (typeof text !== 'string' || !text.isWellFormed()) throw new ForwardProtocolError(`option.${name} must be a UTF-8 string`);
  return text;
}

// A Buffer's subarray (one per str) costs several times a plain Uint8Array's.
function plain(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A record with its strings (bytes, see `decoder`) decoded, in place. */
function texts(value: unknown): unknown {
  if (value instanceof Uint8Array) return utf8Text(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = texts(value[i]);
  } else if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const map = value as Record<string, unknown>;
    for (const key in map) map[key] = texts(map[key]);
  }
  return value;
}

/**
 * UTF-8 to a string, each byte of an ill-formed sequence as the lone surrogate U+DC00 + byte
 * (so distinct bytes stay distinct, and the result is well-formed only if the bytes were UTF-8).
 * Short strings, most of a record's, are decoded here; long ones by the platform's fatal decoder,
 * which checks as it decodes.
 */
export function utf8Text(bytes: Uint8Array, start = 0, length = bytes.length - start): string {
  const end = start + length;
  if (length > 64) {
    try {
      return utf8Decoder.decode(bytes.subarray(start, end));
    } catch {
      // Not UTF-8 (the decoder is fatal): escaped byte by byte below.
    }
  }
  const units: number[] = [];
  let i = start;
  while (i < end) {
    const b = bytes[i]!;
    if (b < 0x80) {
      units.push(b);
      i++;
      continue;
    }
    const n = sequenceLength(bytes, i, end);
    if (n === 0) {
      units.push(0xdc00 | b);
      i++;
    } else if (n === 2) {
      units.push(((b & 0x1f) << 6) | (bytes[i + 1]! & 0x3f));
      i += 2;
    } else if (n === 3) {
      units.push(((b & 0x0f) << 12) | ((bytes[i + 1]! & 0x3f) << 6) | (bytes[i + 2]! & 0x3f));
      i += 3;
    } else {
      const cp = ((b & 0x07) << 18) | ((bytes[i + 1]! & 0x3f) << 12) | ((bytes[i + 2]! & 0x3f) << 6) | (bytes[i + 3]! & 0x3f);
      units.push(0xd800 | ((cp - 0x10000) >> 10), 0xdc00 | ((cp - 0x10000) & 0x3ff));
      i += 4;
    }
  }
  if (units.length <= 4096) return String.fromCharCode(...units);
  let text = '';
  for (let from = 0; from < units.length; from += 4096) text += String.fromCharCode(...units.slice(from, from + 4096));
  return text;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

// The length of the well-formed UTF-8 sequence whose lead byte is at `i`, or 0 (Unicode's table
// 3-7: no overlong forms, no surrogates, nothing above U+10FFFF).
function sequenceLength(bytes: Uint8Array, i: number, end: number): number {
  const b = bytes[i]!;
  if (b >= 0xc2 && b <= 0xdf) return continues(bytes, i + 1, end, 0x80, 0xbf) ? 2 : 0;
  if (b >= 0xe0 && b <= 0xef) {
    const second = continues(bytes, i + 1, end, b === 0xe0 ? 0xa0 : 0x80, b === 0xed ? 0x9f : 0xbf);
    return second && continues(bytes, i + 2, end, 0x80, 0xbf) ? 3 : 0;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    const second = continues(bytes, i + 1, end, b === 0xf0 ? 0x90 : 0x80, b === 0xf4 ? 0x8f : 0xbf);
    return second && continues(bytes, i + 2, end, 0x80, 0xbf) && continues(bytes, i + 3, end, 0x80, 0xbf) ? 4 : 0;
  }
  return 0;
}

function continues(bytes: Uint8Array, at: number, end: number, lo: number, hi: number): boolean {
  return at < end && bytes[at]! >= lo && bytes[at]! <= hi;
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
