import net from 'node:net';
import { Registry } from 'prom-client';
import type { Logger } from '../../core/logger.js';
import { encodeAck, ForwardDecoder, ForwardProtocolError, type ForwardMessage } from './decode.js';
import { createDelivery, DeliveryAbandoned, type ForwardIngestDeps } from './delivery.js';
import { createForwardMetrics } from './records.js';

export type { ForwardIngestDeps } from './delivery.js';

/**
 * Tally's Fluentd forward listener: what services instrumented with Weave's Go billing client
 * reach when `-billing.ingester` points here (its default is localhost:24225), and what any other
 * Fluentd sender can use. Records go through `ingestEvents`, the same durable path as the HTTP API.
 */
export interface ForwardServerOptions {
  host: string;
  port: number;
  deps: ForwardIngestDeps;
  logger: Logger;
  /** Where `tally_forward_records_total` goes; a new Registry when unset. */
  registry?: Registry;
  /** How long to retry while Postgres or Temporal is down before closing without ack (default 30 s). */
  retryBudgetMs?: number;
  /** A message (or a CompressedPackedForward's decompressed entries) larger than this closes the connection (default 16 MiB). */
  maxMessageBytes?: number;
  /** Events per `ingestEvents` call (default 1000). */
  maxEventsPerCall?: number;
}

export interface ForwardServer {
  port: number;
  registry: Registry;
  /** Stops accepting, lets each connection finish what it has read (retries included), then closes it. */
  close(): Promise<void>;
}

export async function startForwardServer(options: ForwardServerOptions): Promise<ForwardServer> {
  const registry = options.registry ?? new Registry();
  const metrics = createForwardMetrics(registry);
  const maxMessageBytes = options.maxMessageBytes ?? 16 * 1024 * 1024;
  const { deliver } = createDelivery({
    deps: options.deps,
    metrics,
    retryBudgetMs: options.retryBudgetMs ?? 30_000,
    maxEventsPerCall: options.maxEventsPerCall ?? 1000,
  });
  const connections = new Map<net.Socket, { busy: boolean; done: Promise<void> }>();
  let closing = false;

  async function serve(socket: net.Socket, state: { busy: boolean }): Promise<void> {
    const log = options.logger.child({ component: 'forward', peer: `${socket.remoteAddress}:${socket.remotePort}` });
    // Without a listener a peer's reset would be an uncaught error; the read loop sees it anyway.
    socket.on('error', (err) => log.debug({ err }, 'forward socket error'));
    socket.setNoDelay(true); // an ack is a few bytes that a sender is waiting for
    const decoder = new ForwardDecoder({ maxMessageBytes });
    const sendAck = (chunk: string, encoding: 'json' | 'msgpack') =>
      new Promise<void>((resolve, reject) => socket.write(encodeAck(chunk, encoding), (err) => (err ? reject(err) : resolve())));
    try {
      // One read at a time, in order. While a read's records are being stored the socket's buffer
      // fills and reading pauses, so a sender that outpaces Postgres or Temporal is slowed by TCP
      // rather than buffered here; the next read then takes all that waited, as one larger batch.
      for await (const chunk of socket.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        state.busy = true;
        const messages: ForwardMessage[] = [];
        let malformed: ForwardProtocolError | null = null;
        try {
          for (const message of decoder.push(chunk)) messages.push(message);
        } catch (err) {
          if (!(err instanceof ForwardProtocolError)) throw err;
          malformed = err; // the messages before it are good and are still stored and acknowledged
        }
        await deliver(messages, sendAck, log);
        if (malformed) throw malformed;
        state.busy = false;
        if (closing) break;
      }
      if (!closing) decoder.finish();
    } catch (err) {
      if (err instanceof ForwardProtocolError) {
        metrics.records.inc({ status: 'malformed' });
        log.warn({ reason: err.message }, 'malformed forward input; closing the connection');
      } else if (!(err instanceof DeliveryAbandoned) && !closing) {
        log.warn({ err }, 'forward connection failed');
      }
    }
    closeGracefully(socket);
  }

  const server = net.createServer((socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    const state = { busy: false, done: Promise.resolve() };
    connections.set(socket, state);
    state.done = serve(socket, state).finally(() => connections.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => options.logger.error({ err }, 'forward server error'));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  options.logger.info({ host: options.host, port }, 'listening for the Fluentd forward protocol');

  return {
    port,
    registry,
    async close() {
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      // An idle connection has nothing in flight; a busy one stops after the read it is storing.
      for (const [socket, state] of connections) if (!state.busy) socket.destroy();
      await Promise.all([...connections.values()].map((c) => c.done));
      await stopped;
    },
  };
}

/**
 * Closing a socket that still has unread input makes the kernel send a reset, and a reset can
 * discard acks the sender has not read yet. So: send FIN after the acks, drop whatever else the
 * sender writes, and destroy only when it has closed too or after a short grace period.
 */
function closeGracefully(socket: net.Socket, graceMs = 2_000): void {
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), graceMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.on('data', () => undefined);
  socket.resume();
  socket.end();
}
