// Full speed, closed loop: each connection sends its next request as soon as the previous answer
// has arrived, over bench/http-wire.ts (docs/benchmarks.md: autocannon, used before, took
// 1.1–2.3 ms of CPU per request on the cores it shares with the stack it loads). The connections
// are opened in turn, so they are spread evenly over the API's processes.
import { answeringConnection, connectionsInTurn, requestsOnTheWire } from './http-wire.js';
import { quantile } from './results.js';

export interface ClosedRun {
  ok: number;
  /** Answers with a status of 300 or more. */
  non2xx: number;
  /** Requests lost to a connection error. */
  errors: number;
  /** From the first request sent to the last answer received. */
  seconds: number;
  p50: number;
  p99: number;
}

export async function closedLoad(opts: {
  url: string;
  path: string;
  /** A GET answered on each connection before the load starts (bench/http-wire.ts). */
  greeting: string;
  headers: Record<string, string>;
  bodies: readonly Buffer[];
  requests: number;
  connections: number;
}): Promise<ClosedRun> {
  const target = new URL(opts.url);
  const wire = requestsOnTheWire(target, opts.path, opts.headers, opts.bodies);
  const latencies: number[] = [];
  let ok = 0, non2xx = 0, errors = 0, sent = 0;
  const conns = await connectionsInTurn(opts.connections, () => {
    let sentAt = 0;
    const next = () => {
      if (sent >= opts.requests) return void conn.socket.end();
      sentAt = performance.now();
      conn.socket.write(wire[sent++ % wire.length]!);
    };
    const conn = Object.assign(answeringConnection(target, opts.greeting, (status) => {
      last = performance.now();
      if (status < 300) {
        ok++;
        latencies.push(last - sentAt);
      } else non2xx++;
      next();
    }), { next });
    return conn;
  });
  const started = performance.now();
  let last = started;
  for (const conn of conns) conn.next();
  await Promise.all(conns.map(async (conn) => {
    await conn.closed;
    if (conn.failed()) errors++;
  }));
  latencies.sort((a, b) => a - b);
  return { ok, non2xx, errors, seconds: (last - started) / 1000, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}
