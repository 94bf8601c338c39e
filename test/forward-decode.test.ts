import { describe, expect, it } from 'vitest';
import { utf8Text } from '../api/forward/decode.js';

const text = (...bytes: number[]) => utf8Text(Uint8Array.from(bytes));

describe('utf8Text: a msgpack str as a string, bytes that are not UTF-8 as lone surrogates', () => {
  it('decodes UTF-8 of every length as the platform does', () => {
    for (const s of ['', 'unique-key:container-seconds', 'é', '€', '𝄞', `${'x'.repeat(70)}é€𝄞`, '€'.repeat(2000)]) {
      expect(utf8Text(Buffer.from(s))).toBe(s);
    }
    expect(utf8Text(Buffer.from('ab€cd'), 1, 5)).toBe('b€c'); // a slice, as the decoder passes map keys
  });

  it('gives each byte of an ill-formed sequence as U+DC00 + the byte, so the string is never well-formed', () => {
    const cases: [number[], string][] = [
      [[0x6b, 0xc1, 0x81], 'k\udcc1\udc81'], // an overlong "A": read leniently it would be "kA"
      [[0xc0, 0x80], '\udcc0\udc80'], // an overlong NUL
      [[0xed, 0xa0, 0x80], '\udced\udca0\udc80'], // a UTF-16 surrogate spelt in UTF-8
      [[0xf4, 0x90, 0x80, 0x80], '\udcf4\udc90\udc80\udc80'], // above U+10FFFF
      [[0xe2, 0x82], '\udce2\udc82'], // cut short
      [[0x80, 0x41], '\udc80A'], // a continuation byte alone
      [[0xff, 0xfe], '\udcff\udcfe'],
      [[0xc3, 0xa9, 0xe2, 0x28, 0xa1], 'é\udce2(\udca1'],
    ];
    for (const [bytes, expected] of cases) {
      const decoded = text(...bytes);
      expect(decoded).toBe(expected);
      expect(decoded.isWellFormed()).toBe(false);
    }
    // The same in a long string, which goes through the platform's check first.
    expect(utf8Text(Buffer.concat([Buffer.from('y'.repeat(100)), Buffer.from([0xc1, 0x81])]))).toBe(`${'y'.repeat(100)}\udcc1\udc81`);
  });
});
