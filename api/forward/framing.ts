/**
 * Splits a TCP byte stream into whole Fluentd forward messages without decoding them.
 *
 * A message is either a msgpack value or a JSON array (Fluentd's in_forward accepts both, and the
 * Go billing client sends JSON arrays back to back with no separator). The kind is told by each
 * message's first byte. Framing is kept apart from decoding so that a message is decoded only
 * once it is whole, a half-received message costs a resumable scan rather than a failed decode
 * per TCP read, and a peer that never finishes a message is cut off at `maxMessageBytes`.
 */

export type FrameEncoding = 'json' | 'msgpack';

export type Frame =
  | { kind: 'heartbeat' }
  | { kind: 'message'; encoding: FrameEncoding; bytes: Buffer };

/** The stream is not the forward protocol: the connection cannot be trusted past this point. */
export class ForwardProtocolError extends Error {
  readonly code = 'FORWARD_PROTOCOL';
}

const MSGPACK_NIL = 0xc0;
const JSON_ARRAY = 0x5b; // '['
const JSON_OBJECT = 0x7b; // '{' (in_forward takes it for JSON too; it is rejected later as not an array)

/** Where an unfinished scan stopped, so the next read resumes there instead of rescanning. */
type Scan =
  | { encoding: 'msgpack'; pos: number; items: number }
  | { encoding: 'json'; pos: number; depth: number; inString: boolean; escaped: boolean };

export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private start = 0;
  private end = 0;
  private scan: Scan | null = null;

  constructor(private readonly maxMessageBytes: number) {}

  /** Appends bytes read from the socket and yields every message they complete, in order. */
  *push(chunk: Buffer): Generator<Frame> {
    this.append(chunk);
    for (;;) {
      const frame = this.next();
      if (!frame) break;
      yield frame;
    }
    this.compact();
  }

  /** True when the peer stopped in the middle of a message. */
  get hasPartialMessage(): boolean {
    return this.end > this.start;
  }

  private next(): Frame | null {
    if (!this.scan) {
      // Whitespace between JSON messages is allowed (some senders end each with a newline).
      while (this.start < this.end && isJsonWhitespace(this.buf[this.start]!)) this.start++;
      if (this.start === this.end) return null;
      const first = this.buf[this.start]!;
      if (first === MSGPACK_NIL) {
        // A msgpack nil is the protocol's TCP heartbeat: nothing to answer.
        this.start++;
        return { kind: 'heartbeat' };
      }
      if (first === JSON_ARRAY || first === JSON_OBJECT) {
        this.scan = { encoding: 'json', pos: this.start, depth: 0, inString: false, escaped: false };
      } else if ((first >= 0x90 && first <= 0x9f) || first === 0xdc || first === 0xdd) {
        this.scan = { encoding: 'msgpack', pos: this.start, items: 1 };
      } else {
        throw new ForwardProtocolError(
          `byte 0x${first.toString(16).padStart(2, '0')} cannot start a forward message (expected a msgpack array or a JSON array)`,
        );
      }
    }
    const scan = this.scan;
    const done = scan.encoding === 'json' ? scanJson(this.buf, this.end, scan) : scanMsgpack(this.buf, this.end, scan);
    if (!done) {
      if (this.end - this.start > this.maxMessageBytes) {
        throw new ForwardProtocolError(`message larger than ${this.maxMessageBytes} bytes`);
      }
      return null;
    }
    const bytes = Buffer.from(this.buf.subarray(this.start, scan.pos)); // a copy: the buffer is reused
    this.start = scan.pos;
    this.scan = null;
    return { kind: 'message', encoding: scan.encoding, bytes };
  }

  // A growable buffer: appending copies each byte about once, however a message is split into reads.
  private append(chunk: Buffer): void {
    if (this.end + chunk.length > this.buf.length) {
      const live = this.end - this.start;
      const grown = Buffer.allocUnsafe(Math.max(2 * this.buf.length, live + chunk.length, 64 * 1024));
      this.buf.copy(grown, 0, this.start, this.end);
      this.rebase(grown, live);
    }
    chunk.copy(this.buf, this.end);
    this.end += chunk.length;
  }

  private compact(): void {
    if (this.start === this.end && !this.scan) {
      this.start = this.end = 0;
    } else if (this.start > this.buf.length / 2) {
      const live = this.end - this.start;
      this.buf.copy(this.buf, 0, this.start, this.end);
      this.rebase(this.buf, live);
    }
  }

  private rebase(buf: Buffer, live: number): void {
    if (this.scan) this.scan.pos -= this.start;
    this.buf = buf;
    this.start = 0;
    this.end = live;
  }
}

function isJsonWhitespace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** Advances to the end of one JSON value (brackets outside strings); true when it is complete. */
function scanJson(buf: Buffer, end: number, s: Extract<Scan, { encoding: 'json' }>): boolean {
  for (; s.pos < end; s.pos++) {
    const b = buf[s.pos]!;
    if (s.inString) {
      if (s.escaped) s.escaped = false;
      else if (b === 0x5c) s.escaped = true; // backslash
      else if (b === 0x22) s.inString = false;
    } else if (b === 0x22) {
      s.inString = true;
    } else if (b === 0x5b || b === 0x7b) {
      s.depth++;
    } else if (b === 0x5d || b === 0x7d) {
      s.depth--;
      if (s.depth === 0) {
        s.pos++;
        return true;
      }
    }
  }
  return false;
}

/**
 * Advances over msgpack values until `items` of them are skipped (a container adds its children);
 * true when the message is complete. Lengths come from the headers, so nothing is decoded here.
 */
function scanMsgpack(buf: Buffer, end: number, s: Extract<Scan, { encoding: 'msgpack' }>): boolean {
  while (s.items > 0) {
    if (s.pos >= end) return false;
    const head = buf[s.pos]!;
    const h = header(head);
    if (s.pos + h.size > end) return false; // the length field itself is not here yet
    const n = h.lengthBytes === 0 ? 0 : readUint(buf, s.pos + 1, h.lengthBytes);
    if (h.kind === 'bytes') {
      if (s.pos + h.size + n > end) return false;
      s.pos += h.size + n;
      s.items -= 1;
    } else {
      s.pos += h.size;
      s.items += (h.kind === 'array' ? n : h.kind === 'map' ? 2 * n : h.children) - 1;
    }
  }
  return true;
}

interface Header {
  /** Bytes of the value that do not depend on a length field's value (head, length, ext type, fixed payload). */
  size: number;
  /** Width of the big-endian length/count field right after the head byte, 0 if none. */
  lengthBytes: 0 | 1 | 2 | 4;
  kind: 'fixed' | 'bytes' | 'array' | 'map';
  /** Children of a fix-size container (fixarray, fixmap). */
  children: number;
}

/** The header of every head byte, worked out once: the scan looks up each value's head byte. */
const HEADERS: readonly (Header | undefined)[] = Array.from({ length: 256 }, (_, b) => (b === 0xc1 ? undefined : headerOf(b)));

function header(b: number): Header {
  const h = HEADERS[b];
  if (h === undefined) throw new ForwardProtocolError(`byte 0x${b.toString(16)} is not valid msgpack`); // 0xc1
  return h;
}

function fixed(size: number): Header {
  return { size, lengthBytes: 0, kind: 'fixed', children: 0 };
}

function headerOf(b: number): Header {
  if (b <= 0x7f || b >= 0xe0) return fixed(1); // positive and negative fixint
  if (b <= 0x8f) return { size: 1, lengthBytes: 0, kind: 'fixed', children: 2 * (b & 0x0f) }; // fixmap
  if (b <= 0x9f) return { size: 1, lengthBytes: 0, kind: 'fixed', children: b & 0x0f }; // fixarray
  if (b <= 0xbf) return fixed(1 + (b & 0x1f)); // fixstr
  switch (b) {
    case 0xc0: case 0xc2: case 0xc3: return fixed(1); // nil, false, true
    case 0xc4: case 0xd9: return { size: 2, lengthBytes: 1, kind: 'bytes', children: 0 }; // bin8, str8
    case 0xc5: case 0xda: return { size: 3, lengthBytes: 2, kind: 'bytes', children: 0 }; // bin16, str16
    case 0xc6: case 0xdb: return { size: 5, lengthBytes: 4, kind: 'bytes', children: 0 }; // bin32, str32
    case 0xc7: return { size: 3, lengthBytes: 1, kind: 'bytes', children: 0 }; // ext8 (+ type byte)
    case 0xc8: return { size: 4, lengthBytes: 2, kind: 'bytes', children: 0 }; // ext16
    case 0xc9: return { size: 6, lengthBytes: 4, kind: 'bytes', children: 0 }; // ext32
    case 0xca: return fixed(5); // float32
    case 0xcb: return fixed(9); // float64
    case 0xcc: case 0xd0: return fixed(2);
    case 0xcd: case 0xd1: return fixed(3);
    case 0xce: case 0xd2: return fixed(5);
    case 0xcf: case 0xd3: return fixed(9);
    case 0xd4: return fixed(3); // fixext1
    case 0xd5: return fixed(4); // fixext2
    case 0xd6: return fixed(6); // fixext4
    case 0xd7: return fixed(10); // fixext8 (EventTime)
    case 0xd8: return fixed(18); // fixext16
    case 0xdc: return { size: 3, lengthBytes: 2, kind: 'array', children: 0 };
    case 0xdd: return { size: 5, lengthBytes: 4, kind: 'array', children: 0 };
    case 0xde: return { size: 3, lengthBytes: 2, kind: 'map', children: 0 };
    case 0xdf: return { size: 5, lengthBytes: 4, kind: 'map', children: 0 };
    default: throw new ForwardProtocolError(`byte 0x${b.toString(16)} is not valid msgpack`); // 0xc1
  }
}

function readUint(buf: Buffer, offset: number, width: 1 | 2 | 4): number {
  return width === 1 ? buf.readUInt8(offset) : width === 2 ? buf.readUInt16BE(offset) : buf.readUInt32BE(offset);
}
