import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { UsageEventSchema } from '../../core/usage-event.js';
import { eventRulesFromConfig } from '../event-rules.js';
import { workflowUrl } from '../../core/temporal-links.js';
import { ingestEvents, IngestUnavailableError, type IngestTimings } from '../ingest.js';
import { observeIngestStore } from '../plugins/metrics.js';
import { ErrorBody, StringEnum } from '../schemas.js';

const EventResult = Type.Object({
  index: Type.Integer(),
  uniqueKey: Type.Optional(Type.String()),
  status: StringEnum(['accepted', 'duplicate', 'conflict', 'invalid']),
  field: Type.Optional(Type.String({ description: 'For invalid events: the field at fault' })),
  reason: Type.Optional(Type.String({ description: 'For invalid events: why' })),
});

const IngestResponse = Type.Object({
  batchId: Type.Union([Type.String(), Type.Null()]),
  workflowId: Type.Union([Type.String(), Type.Null()]),
  temporalUrl: Type.Union([Type.String(), Type.Null()]),
  results: Type.Array(EventResult),
});

export const eventRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db } = app.deps;
  const rules = eventRulesFromConfig(config);
  const onStored = (timings: IngestTimings, amounts: Map<string, number>) => observeIngestStore(app.metrics, timings, amounts);
  /**
   * Hands the request's parsed events over to ingest and lets go of them: not async, so that no
   * frame waiting on Postgres holds them, and the request no longer does either (docs/ingest.md,
   * "What a request holds while it waits": measured with a stand-in for this handler, not through
   * Fastify).
   */
  const startIngest = (req: { body: { events: unknown[] } | null }) => {
    const events = req.body!.events;
    req.body = null;
    return ingestEvents(events, { db, temporalHealth: app.temporalHealth, taskQueue: config.TEMPORAL_TASK_QUEUE, rules, onStored });
  };

  app.post('/v1/events', {
    onRequest: app.requireApiKey('ingest'),
    bodyLimit: config.MAX_BODY_BYTES,
    schema: {
      summary: 'Report usage events',
      description:
        'Each event is validated on its own and answered in order: accepted, duplicate (same key, same payload), ' +
        'conflict (same key, another payload: nothing is overwritten) or invalid (with the field and reason). ' +
        'A 200 means the accepted events are stored durably and on their way to BigQuery. ' +
        'A 400 means nothing was accepted (a malformed request, or every event invalid).',
      tags: ['ingest'],
      body: Type.Object({
        events: Type.Array(Type.Unknown(), {
          minItems: 1,
          maxItems: config.MAX_EVENTS_PER_REQUEST,
          description: 'UsageEvent objects (see the UsageEvent schema); each is validated separately',
        }),
      }),
      security: [{ apiKey: [] }],
      response: { 200: IngestResponse, 400: Type.Union([IngestResponse, ErrorBody]), 503: ErrorBody },
    },
  }, async (req, reply) => {
    const eventCount = req.body.events.length;
    let outcome;
    try {
      outcome = await startIngest(req as { body: { events: unknown[] } | null });
    } catch (err) {
      if (!(err instanceof IngestUnavailableError)) throw err;
      req.log.warn({ err }, 'ingest unavailable; nothing kept');
      return reply.code(503).header('retry-after', '5').send({ code: err.code, message: `${err.message}; nothing was kept, retry later` });
    }
    app.metrics.ingestBatchEvents.observe(eventCount);
    const { timings } = outcome;
    // Up to here: the answer's serialization and sending are not in it.
    if (config.INGEST_SLOW_REQUEST_MS > 0 && reply.elapsedTime >= config.INGEST_SLOW_REQUEST_MS) {
      req.log.warn({ events: eventCount, elapsedMs: Math.round(reply.elapsedTime * 10) / 10, ...timings },
        'slow ingest request: elapsedMs since the API took it, then each step in ms');
    }
    const counts = new Map<string, number>();
    for (const r of outcome.results) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
    for (const [status, n] of counts) app.metrics.ingestEvents.inc({ status }, n);
    const allInvalid = outcome.results.every((r) => r.status === 'invalid');
    return reply.code(allInvalid ? 400 : 200).send({
      batchId: outcome.batchId, workflowId: outcome.workflowId, results: outcome.results,
      temporalUrl: outcome.workflowId ? workflowUrl(config.TEMPORAL_UI_URL, config.TEMPORAL_NAMESPACE, outcome.workflowId) : null,
    });
  });

  // The event's own schema in the OpenAPI document, for producers writing a client.
  app.addSchema({ ...UsageEventSchema, $id: 'UsageEvent' });
};
