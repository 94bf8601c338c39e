/**
 * The ingest transaction and the activity that drains its batch take the same transaction-scoped
 * advisory lock. The activity therefore reads the batch only once the transaction that stored it
 * has committed (the batch is there) or rolled back (it never will be): never in between.
 */
export const lockBatchSql = 'SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))';
