import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { MultipartFile } from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';
import { ZuoraCode, ZuoraError } from '../errors.js';
import { fingerprintBytes } from '../idempotency.js';
import type { Account, UsageRecord } from '../model.js';
import { AccountKeyParams, ImportIdParams, UsagePageQuery } from '../schemas.js';
import type { SandboxServices } from '../services.js';
import { accountNotFound } from './accounts.js';

/** Zuora's limits on an uploaded usage file. */
export const USAGE_FILE_MAX_BYTES = 4 * 1024 * 1024;
const FILE_NAME_MAX = 50;

/** The multipart part named `file`, read whole; Zuora's usage upload has exactly that one part. */
async function readUsageUpload(request: FastifyRequest): Promise<{ fileName: string; bytes: Buffer }> {
  if (!request.isMultipart()) {
    throw new ZuoraError(400, ZuoraCode.malformedRequest, 'The usage file must be sent as multipart/form-data with a part named file');
  }
  let part: MultipartFile | undefined;
  try {
    part = await request.file();
    if (!part || part.fieldname !== 'file') {
      throw new ZuoraError(400, ZuoraCode.malformedRequest, "The multipart body must have a file part named 'file'");
    }
    return { fileName: part.filename, bytes: await part.toBuffer() };
  } catch (error) {
    if ((error as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') {
      throw new ZuoraError(413, ZuoraCode.requestExceededLimit, `The usage file exceeds Zuora's limit of 4 MB (${USAGE_FILE_MAX_BYTES} bytes)`);
    }
    throw error;
  }
}

function checkFileName(fileName: string): void {
  // Zuora rejects these with HTTP 200 and success: false, like its other business rules.
  if (fileName.length > FILE_NAME_MAX) {
    throw new ZuoraError(200, ZuoraCode.invalidValue, `The file name '${fileName}' is longer than ${FILE_NAME_MAX} characters`);
  }
  if (!/\.csv$/i.test(fileName)) {
    throw new ZuoraError(200, ZuoraCode.invalidValue, `The file name '${fileName}' must end in .csv: only CSV usage files are accepted`);
  }
}

/** One item of `GET /v1/usage/accounts/{account-key}`; `quantity` is a decimal string, as Zuora documents. */
function usageView(record: UsageRecord, account: Account) {
  return {
    id: record.id,
    accountId: record.accountId,
    accountNumber: record.accountNumber,
    accountName: account.name,
    subscriptionNumber: record.subscriptionNumber ?? null,
    chargeNumber: record.chargeNumber ?? null,
    unitOfMeasure: record.unitOfMeasure,
    quantity: record.quantity,
    startDateTime: record.startDateTime,
    ...(record.endDateTime !== undefined ? { endDateTime: record.endDateTime } : {}),
    submissionDateTime: record.submissionDateTime,
    status: record.status,
    sourceName: record.sourceName,
    fileName: record.fileName ?? null,
    uniqueKey: record.uniqueKey ?? null,
    description: record.description ?? null,
  };
}

/** Zuora returns usage newest first: by usage date, then by submission. */
function newestFirst(a: UsageRecord, b: UsageRecord): number {
  if (a.startDateTime !== b.startDateTime) return a.startDateTime < b.startDateTime ? 1 : -1;
  if (a.submissionDateTime !== b.submissionDateTime) return a.submissionDateTime < b.submissionDateTime ? 1 : -1;
  return 0;
}

export const usageRoutes: FastifyPluginAsyncTypebox<SandboxServices> = async (app, { state, importer, idempotency }) => {
  app.post('/usage', async (request, reply) => {
    const { fileName, bytes } = await readUsageUpload(request);
    return idempotency.answer(request, reply, fingerprintBytes(bytes), () => {
      checkFileName(fileName);
      const usageImport = importer.submit(fileName, bytes.toString('utf8'), bytes.length);
      return {
        statusCode: 200,
        body: { success: true, checkImportStatus: `/v1/usage/${usageImport.id}/status`, size: usageImport.size },
      };
    });
  });

  app.get('/usage/:importId/status', { schema: { params: ImportIdParams } }, async (request) => {
    const usageImport = state.findImport(request.params.importId);
    if (!usageImport) throw new ZuoraError(404, ZuoraCode.notFound, `No usage import has the id '${request.params.importId}'`);
    return {
      success: true,
      importStatus: usageImport.status,
      ...(usageImport.message !== undefined ? { message: usageImport.message } : {}),
    };
  });

  app.get('/usage/accounts/:accountKey', { schema: { params: AccountKeyParams, querystring: UsagePageQuery } }, async (request) => {
    const { accountKey } = request.params;
    const account = state.findAccount(accountKey);
    if (!account) throw accountNotFound(accountKey);
    const page = request.query.page ?? 1;
    const pageSize = request.query.pageSize ?? 20;
    const records = state.usageOfAccount(account.id).sort(newestFirst);
    const shown = records.slice((page - 1) * pageSize, page * pageSize);
    const hasMore = records.length > page * pageSize;
    return {
      success: true,
      usage: shown.map((record) => usageView(record, account)),
      ...(hasMore ? { nextPage: `/v1/usage/accounts/${encodeURIComponent(accountKey)}?page=${page + 1}&pageSize=${pageSize}` } : {}),
    };
  });
};
