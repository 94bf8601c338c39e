import { describe, expect, it } from 'vitest';
import { loadConfig } from '../core/config.js';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { canonicalTimestamp, checkEvent, parseInstant, UsageEventSchema, validateEvent } from '../core/usage-event.js';

const config = loadConfig({});
const rules = { amountTypes: config.amountTypes, backdatingWindowDays: 35, futureToleranceMs: 5 * 60_000, maxMetadataEntries: 2 };
const now = Date.parse('2026-11-25T12:00:00Z');
const base = { uniqueKey: 'k', internalInstanceId: 'i', timestamp: '2026-11-25T11:00:00Z', amounts: { samples: 1 } };

describe('validateEvent', () => {
  it('accepts the edges of the backdating window and of the future tolerance, and nothing beyond', () => {
    const at = (iso: string) => validateEvent({ ...base, timestamp: iso }, rules, now);
    expect(at('2026-10-21T12:00:00Z').ok).toBe(true); // exactly 35 days back
    expect(at('2026-10-21T11:59:59.999Z')).toEqual({ ok: false, field: 'timestamp', reason: 'older than the backdating window of 35 days' });
    expect(at('2026-11-25T12:05:00Z').ok).toBe(true);
    expect(at('2026-11-25T12:05:00.001Z')).toEqual({ ok: false, field: 'timestamp', reason: 'more than 5 minutes in the future' });
    expect(at('2026-11-25 11:00')).toMatchObject({ ok: false, field: 'timestamp' });
  });

  it('names the field and the reason for each kind of bad event', () => {
    expect(validateEvent({ ...base, amounts: { samples: 1.5 } }, rules, now)).toMatchObject({ ok: false, field: 'amounts.samples' });
    expect(validateEvent({ ...base, amounts: { samples: '5' } }, rules, now)).toMatchObject({ ok: false, field: 'amounts.samples' });
    expect(validateEvent({ ...base, uniqueKey: 'x'.repeat(257) }, rules, now)).toMatchObject({ ok: false, field: 'uniqueKey' });
    expect(validateEvent({ ...base, extra: 1 }, rules, now)).toMatchObject({ ok: false, field: 'extra' });
    expect(validateEvent({ ...base, metadata: { a: '1', b: '2', c: '3' } }, rules, now)).toEqual({ ok: false, field: 'metadata', reason: 'more than 2 entries' });
    expect(validateEvent({ ...base, metadata: { a: 1 } }, rules, now)).toMatchObject({ ok: false, field: 'metadata.a' });
    expect(validateEvent({ ...base, metadata: { ['n'.repeat(128)]: 'v' } }, rules, now).ok).toBe(true);
    expect(validateEvent({ ...base, metadata: { ['n'.repeat(129)]: 'v' } }, rules, now)).toEqual({
      ok: false, field: `metadata.${'n'.repeat(32)}…`, reason: 'a metadata name must be 1–128 characters long',
    });
    expect(validateEvent({ ...base, metadata: { '': 'v' } }, rules, now)).toMatchObject({ ok: false, field: 'metadata.' });
  });

  it('gives the same payload hash whatever the key order or timestamp spelling', () => {
    const a = validateEvent({ ...base, amounts: { samples: 1, 'node-seconds': 2 }, metadata: { x: '1', y: '2' } }, rules, now);
    const b = validateEvent({ ...base, timestamp: '2026-11-25T12:00:00.000+01:00', amounts: { 'node-seconds': 2, samples: 1 }, metadata: { y: '2', x: '1' } }, rules, now);
    const c = validateEvent({ ...base, amounts: { samples: 1, 'node-seconds': 3 } }, rules, now);
    if (!a.ok || !b.ok || !c.ok) throw new Error('expected valid events');
    expect(a.payloadHash).toBe(b.payloadHash);
    expect(a.payloadHash).not.toBe(c.payloadHash);
    expect(a.event.day).toBe('2026-11-25');
  });
});

/** A seeded generator (mulberry32): the same corpus on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('timestamps', () => {
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');

  it('are read as Date.parse reads them, and spelled as toISOString spells them, over 20,000 generated date-times', () => {
    const next = random(7);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
    for (let i = 0; i < 20_000; i++) {
      const year = 1970 + Math.floor(next() * 130);
      const month = 1 + Math.floor(next() * 12);
      const day = 1 + Math.floor(next() * new Date(Date.UTC(year, month, 0)).getUTCDate());
      const fraction = pick(['', '.1', '.12', '.123', '.1234', '.999999', '.123456789', `.${pad(Math.floor(next() * 1000), 3)}`]);
      const zone = pick(['Z', 'z', '+00:00', '-00:00', `+${pad(Math.floor(next() * 24))}:${pad(Math.floor(next() * 60))}`, `-${pad(Math.floor(next() * 24))}:${pad(Math.floor(next() * 60))}`]);
      const text = `${year}-${pad(month)}-${pad(day)}${pick(['T', 't', ' '])}${pad(Math.floor(next() * 24))}:${pad(Math.floor(next() * 60))}:${pad(Math.floor(next() * 60))}${fraction}${zone}`;
      expect([text, parseInstant(text)]).toEqual([text, Date.parse(text)]);
      expect([text, canonicalTimestamp(text)]).toEqual([text, new Date(Date.parse(text)).toISOString()]);
    }
  });

  it('must name a real calendar date and a time of day, where Date.parse would roll over', () => {
    expect(parseInstant('2024-02-29T00:00:00Z')).toBe(Date.parse('2024-02-29T00:00:00Z'));
    for (const text of [
      '2026-02-29T00:00:00Z', '2026-02-30T00:00:00Z', '2026-04-31T00:00:00Z', '2100-02-29T00:00:00Z', '2026-01-01T24:00:00Z',
      '2026-01-01T00:60:00Z', '2026-01-01T00:00:60Z', '2026-00-10T00:00:00Z', '2026-13-01T00:00:00Z', '2026-01-00T00:00:00Z',
      '2026-01-01T00:00:00', '2026-01-01T00:00:00.Z', '2026-01-01T00:00:00+0100', '2026-01-01T00:00:00+01:00Z', '2026-01-01T00:00:00+24:00',
      '2026-1-01T00:00:00Z', '+02026-01-01T00:00:00Z', '2026-01-01T00:00Z', '2026-01-01', '2026-01-01X00:00:00Z', '2026-01-01T00:00:00ZZ', '',
    ]) {
      expect([text, parseInstant(text)]).toEqual([text, undefined]);
    }
    expect(validateEvent({ ...base, timestamp: '2026-02-30T00:00:00Z' }, rules, now)).toMatchObject({ ok: false, field: 'timestamp', reason: expect.stringContaining('real calendar date') });
  });

  it('keep years before 100 as they are written (Date.UTC would read them as 1900–1999)', () => {
    expect(parseInstant('0050-06-01T00:00:00Z')).toBe(Date.parse('0050-06-01T00:00:00Z'));
  });
});

describe('the event shape', () => {
  it('agrees with UsageEventSchema compiled by TypeBox on 20,000 generated events', () => {
    const check = TypeCompiler.Compile(UsageEventSchema);
    const next = random(11);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
    const text = (max: number) => pick(['', 'a', 'x'.repeat(max), 'x'.repeat(max + 1), 5, null, undefined, ['a'], {}]);
    const amount = () => pick([0, 1, 2 ** 53 - 1, 2 ** 53, -1, 1.5, '5', null, true, Number.NaN]);
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const e: Record<string, unknown> = { ...base };
      if (next() < 0.3) e.uniqueKey = text(256);
      if (next() < 0.3) e.internalInstanceId = text(256);
      if (next() < 0.2) e.timestamp = pick([undefined, 5, '2026-11-25T11:00:00.5+00:00', '2026-11-25 11:00:00z', 'yesterday', '2026-11-25T11:00:00']);
      if (next() < 0.4) e.amounts = pick([{ samples: amount() }, { samples: 1, 'node-seconds': amount() }, null, [], 'x', undefined, new Date(0)]);
      if (next() < 0.4) e.metadata = pick([{ a: 'v' }, { a: 'v'.repeat(1024) }, { a: 'v'.repeat(1025) }, { a: 1 }, { a: null }, null, [], 'x', undefined, {}]);
      if (next() < 0.1) e[pick(['extra', 'unique_key', 'Amounts'])] = 1;
      for (const [k, v] of Object.entries(e)) if (v === undefined && next() < 0.5) delete e[k];
      const result = validateEvent(e, rules, now);
      accepted += result.ok ? 1 : 0;
      // The rules beyond the schema cannot fail here (known types, a timestamp in the window, ≤ 2 entries), but for no amounts at all.
      const schemaAndRule = check.Check(e) && Object.keys(e.amounts as object).length > 0;
      expect([e, result.ok]).toEqual([e, schemaAndRule]);
      // Validation alone (the benchmark's baseline) against the same yardstick.
      expect([e, checkEvent(e, rules, now).ok]).toEqual([e, schemaAndRule]);
    }
    expect(accepted).toBeGreaterThan(1_000);
  });
});

describe('loadConfig', () => {
  it('has defaults for the embedded stack', () => {
    expect(config.API_PORT).toBe(3000);
    expect([...config.amountTypes.keys()]).toEqual(['container-seconds', 'node-seconds', 'weavenet-seconds', 'samples']);
    expect(config.amountTypes.get('samples')).toBe('SAMPLES');
  });

  it('names the variable and the reason for a bad value', () => {
    expect(() => loadConfig({ API_PORT: 'eighty' })).toThrow(/API_PORT must be integer/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL must match pattern/);
    expect(() => loadConfig({ AMOUNT_TYPES: 'samples' })).toThrow(/AMOUNT_TYPES/);
  });
});
