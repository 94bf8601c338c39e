import { describe, expect, it } from 'vitest';
import { insertRefusal } from '../activities/raw-events.js';

// The local emulator never answers a partial failure (it takes rows missing a required field, and
// fails the whole request on a wrong type), so the answer BigQuery documents for one is read here.
describe('insertRefusal', () => {
  const rows = [{ insertId: 'a:container-seconds' }, { insertId: 'b:container-seconds' }];

  it('is null when every row was taken', () => {
    expect(insertRefusal({ kind: 'bigquery#tableDataInsertAllResponse' }, rows)).toBeNull();
    expect(insertRefusal({ kind: 'bigquery#tableDataInsertAllResponse', insertErrors: [] }, rows)).toBeNull();
  });

  it('names the first refused row and the reason when BigQuery answers 200 with insertErrors', () => {
    const err = insertRefusal({ insertErrors: [{ index: 1, errors: [{ reason: 'invalid', message: 'no such field: bogus.' }] }] }, rows);
    expect(err?.message).toBe('BigQuery refused 1 of 2 rows; row b:container-seconds: invalid: no such field: bogus.');
  });

  it('still refuses when the errors carry no reason', () => {
    expect(insertRefusal({ insertErrors: [{ index: 0 }] }, rows)?.message).toBe('BigQuery refused 1 of 2 rows; row a:container-seconds: no reason given');
  });
});
