import { describe, expect, it } from 'vitest';
import { loadConfig } from '../core/config.js';
import { validateEvent } from '../core/usage-event.js';

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
