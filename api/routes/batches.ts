import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ingestDrainerWorkflowId } from '../../core/ingest-drainer.js';
import { workflowUrl } from '../../core/temporal-links.js';
import { ErrorBody, StringEnum } from '../schemas.js';

/** Where an accepted batch is: stored (on its way) or written to BigQuery, with its workflow. */
export const batchRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db } = app.deps;

  app.get('/v1/batches/:batchId', {
    onRequest: app.requireApiKey('ingest'),
    schema: {
      summary: 'Where the events of an accepted batch are',
      tags: ['ingest'],
      params: Type.Object({ batchId: Type.String({ format: 'uuid' }) }),
      security: [{ apiKey: [] }],
      response: {
        200: Type.Object({
          batchId: Type.String(),
          status: StringEnum(['accepted', 'written'], {
            description: 'accepted: stored durably, waiting for BigQuery; written: in BigQuery',
          }),
          eventCount: Type.Integer(),
          receivedAt: Type.String({ format: 'date-time' }),
          writtenAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
          workflowId: Type.String(),
          temporalUrl: Type.String(),
        }),
        404: ErrorBody,
      },
    },
  }, async (req, reply) => {
    const { rows } = await db.query<{ event_count: number; received_at: Date; written_at: Date | null; written_by: string | null }>(
      'SELECT event_count, received_at, written_at, written_by FROM ingest_batches WHERE batch_id = $1',
      [req.params.batchId],
    );
    const batch = rows[0];
    if (!batch) {
      return reply.code(404).send({ code: 'BATCH_NOT_FOUND', message: `no accepted batch ${req.params.batchId} (a batch with no accepted event is not kept)` });
    }
    // The drainer that wrote it, or the one that will.
    const workflowId = batch.written_by ?? ingestDrainerWorkflowId(config.TEMPORAL_TASK_QUEUE);
    return {
      batchId: req.params.batchId,
      status: batch.written_at ? 'written' as const : 'accepted' as const,
      eventCount: batch.event_count,
      receivedAt: batch.received_at.toISOString(),
      writtenAt: batch.written_at?.toISOString() ?? null,
      workflowId,
      temporalUrl: workflowUrl(config.TEMPORAL_UI_URL, config.TEMPORAL_NAMESPACE, workflowId),
    };
  });
};
