// Latency at a given load, measured open-loop: request i is planned at start + i / rate whatever
// the earlier ones are doing, and its latency counts from that planned instant (a server that
// falls behind is charged for the queue it builds, not excused by a client that waits for it).
// A rate-limited closed-loop generator (autocannon's, used here before) sends each second's
// quota back to back at the second's start, which measures bursts at full speed, not an even half
// load: hence this generator.
//
// The connections are all opened first, in turn (bench/http-wire.ts), and take the requests in
// turn (the one idle longest takes the next), as many producers each with a connection of its own
// would. Node's http.Agent, used here before, reuses the socket freed last: at half load the
// requests kept to a few sockets, and when one of the API's processes held those, it served up to 1,753 of 1,800 requests (docs/benchmarks.md).
import { answeringConnection, connectionsInTurn, requestsOnTheWire } from './http-wire.js';
import { quantile } from './results.js';

export interface PacedRun {
  sent: number;
  ok: number;
  errors: number;
  seconds: number;
  p50: number;
  p99: number;
  max: number;
  /** When the counted requests began (after the warm-up): to find the slowest in other logs. */
  countedFrom: Date;
  /** The slowest requests: when each was planned (ms from `countedFrom`) and how long it took. */
  slowest: { at: number; ms: number }[];
  /** Every counted request in the order planned: when (ms from `countedFrom`) and how long it took. */
  timeline: { at: number; ms: number }[];
}

export async function pacedLoad(opts: {
  url: string;
  path: string;
  /** A GET answered on each connection before the load starts (bench/http-wire.ts). */
  greeting: string;
  headers: Record<string, string>;
  bodies: readonly Buffer[];
  /** Requests per second, spread evenly. */
  rate: number;
  requests: number;
  /** Connections, opened before the first request; a planned request waits for an idle one beyond that. */
  connections: number;
  /**
   * Requests sent first at the same rate on the same connections and not counted: the server
   * reaches its steady state (the load generator's sockets warm) before latency is measured.
   * A server idle before the run is otherwise charged for waking up.
   */
  warmup?: number;
}): Promise<PacedRun> {
  const target = new URL(opts.url);
  const wire = requestsOnTheWire(target, opts.path, opts.headers, opts.bodies);
  const warmup = opts.warmup ?? 0;
  const total = warmup + opts.requests;
  const gap = 1000 / opts.rate;
  const timeline: { at: number; ms: number }[] = [];
  let errors = 0;
  let settled = 0;
  let allSettled = () => {};
  const done = new Promise<void>((resolve) => (allSettled = resolve));
  const settle = () => {
    if (++settled === total) allSettled();
  };
  let started = 0;
  const planned = (i: number) => started + i * gap;

  type Conn = ReturnType<typeof answeringConnection> & { current: number };
  const idle: Conn[] = [];
  const waiting: number[] = [];
  let open = 0;
  const send = (conn: Conn, i: number) => {
    conn.current = i;
    conn.socket.write(wire[i % wire.length]!);
  };
  const free = (conn: Conn) => {
    const i = waiting.shift();
    if (i === undefined) idle.push(conn);
    else send(conn, i);
  };
  const conns = await connectionsInTurn(opts.connections, () => {
    const conn: Conn = Object.assign(answeringConnection(target, opts.greeting, (status) => {
      const i = conn.current;
      if (status < 300) {
        if (i >= warmup) timeline.push({ at: Math.round(planned(i) - planned(warmup)), ms: performance.now() - planned(i) });
      } else errors++;
      settle();
      free(conn);
    }), { current: -1 });
    return conn;
  });
  for (const conn of conns) {
    open++;
    idle.push(conn);
    void conn.closed.then(() => {
      open--;
      const at = idle.indexOf(conn);
      if (at >= 0) idle.splice(at, 1);
      else if (conn.current >= 0) {
        errors++; // its request in flight is lost
        settle();
      }
      conn.current = -1;
      if (open === 0) while (waiting.length > 0) {
        waiting.shift();
        errors++;
        settle();
      }
    });
  }

  started = performance.now();
  const countedFrom = new Date(Date.now() + warmup * gap);
  for (let i = 0; i < total; i++) {
    const wait = planned(i) - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const conn = idle.shift();
    if (conn) send(conn, i);
    else if (open > 0) waiting.push(i);
    else {
      errors++;
      settle();
    }
  }
  await done;
  const seconds = (performance.now() - planned(warmup)) / 1000;
  for (const conn of conns) conn.socket.destroy();
  const latencies = timeline.map((r) => r.ms).sort((a, b) => a - b);
  for (const r of timeline) r.ms = Math.round(r.ms);
  timeline.sort((a, b) => a.at - b.at);
  return { sent: opts.requests, ok: timeline.length, errors, seconds, countedFrom, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), max: Math.round(latencies.at(-1) ?? NaN),
    timeline,
    slowest: [...timeline].sort((a, b) => b.ms - a.ms).slice(0, 8).sort((a, b) => a.at - b.at) };
}
