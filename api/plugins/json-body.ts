import fp from 'fastify-plugin';
import { isUtf8 } from 'node:buffer';

/**
 * JSON bodies must be UTF-8 (RFC 8259). Read as text, invalid bytes would become U+FFFD, and two
 * unique keys differing only in such bytes would be claimed as one: the second event lost as a
 * duplicate. So the body is read as bytes, checked, then parsed by Fastify's own JSON parser (the
 * same prototype-poisoning checks). The check and the one decode cost about 0.04 ms per 100 KB.
 */
export const jsonBodyPlugin = fp(async (app) => {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    const bytes = body as Buffer;
    if (!isUtf8(bytes)) {
      return done(Object.assign(new Error('the request body is not valid UTF-8; JSON must be sent as UTF-8'), { statusCode: 400, code: 'INVALID_ENCODING' }), undefined);
    }
    parseJson(req, bytes.toString('utf8'), done);
  });
});
