import fp from 'fastify-plugin';
import { createGunzip } from 'node:zlib';

/**
 * Producers may gzip request bodies (`Content-Encoding: gzip`). The body limit applies to the
 * decompressed bytes, so a small bomb cannot inflate past it.
 */
export const gzipBodyPlugin = fp(async (app) => {
  app.addHook('preParsing', async (req, _reply, payload) => {
    const encoding = req.headers['content-encoding']?.toLowerCase();
    if (encoding === undefined || encoding === 'identity') return payload;
    if (encoding !== 'gzip') {
      throw Object.assign(new Error(`Content-Encoding ${encoding} is not supported; send gzip or identity`), {
        statusCode: 415,
        code: 'UNSUPPORTED_ENCODING',
      });
    }
    // The compressed length says nothing of the body's size: let the decompressed stream be measured.
    delete req.headers['content-length'];
    const gunzip = createGunzip();
    gunzip.on('error', () => undefined); // surfaced to Fastify through the stream it reads
    return payload.pipe(gunzip);
  });
});
