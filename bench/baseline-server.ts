// The baseline of the ingest benchmark: a bare Fastify endpoint that parses and validates the
// same batches as Tally's ingest, and stores nothing. `/v1/events` only validates (`checkEvent`):
// what the baseline is. `/v1/events-hashed` also builds each event's canonical payload and
// its SHA-256, the key ledger's dedupe work, as the baseline did up to 2026-12-04
// (docs/benchmarks.md): the benchmark measures it too, for comparison with earlier runs.
import Fastify from 'fastify';
import { loadConfig } from '../core/config.js';
import { checkEvent, validateEvent } from '../core/usage-event.js';
import { eventRulesFromConfig } from '../api/event-rules.js';

const config = loadConfig();
// Judged by the same rules as Tally's ingest.
const rules = eventRulesFromConfig(config);
const app = Fastify({ bodyLimit: config.MAX_BODY_BYTES });
app.get('/healthz', async () => ({ ok: true }));
/** An endpoint answering each event accepted or invalid, as `judge` finds it. */
const judging = (judge: (event: unknown, now: number) => { ok: boolean }) => async (req: { body: unknown }) => {
  const now = Date.now();
  const events = (req.body as { events: unknown[] }).events;
  return { results: events.map((e, index) => ({ index, status: judge(e, now).ok ? 'accepted' : 'invalid' })) };
};
app.post('/v1/events', judging((e, now) => checkEvent(e, rules, now)));
app.post('/v1/events-hashed', judging((e, now) => validateEvent(e, rules, now)));
await app.listen({ host: '127.0.0.1', port: config.API_PORT });
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
