// Latency at a given load, measured open-loop: request i is sent at start + i / rate whatever
// the earlier ones are doing, and its latency counts from that planned instant (a server that
// falls behind is charged for the queue it builds, not excused by a client that waits for it).
// A rate-limited closed-loop generator (autocannon's, used here before) sends each second's
// quota back to back at the second's start, which measures bursts at full speed, not an even half
// load: hence this generator.
import http from 'node:http';

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
  headers: Record<string, string>;
  bodies: readonly string[];
  /** Requests per second, spread evenly. */
  rate: number;
  requests: number;
  /** Most requests in flight at once; a planned request waits for a socket beyond that. */
  connections: number;
  /**
   * Requests sent first at the same rate on the same connections and not counted: the server
   * reaches its steady state (connections open, the load generator's sockets warm) before
   * latency is measured. A server idle before the run is otherwise charged for waking up.
   */
  warmup?: number;
}): Promise<PacedRun> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.connections });
  const target = new URL(opts.url);
  const latencies: number[] = [];
  const timeline: { at: number; ms: number }[] = [];
  let errors = 0;
  const started = performance.now();
  const gap = 1000 / opts.rate;
  const warmup = opts.warmup ?? 0;
  const countedFrom = new Date(Date.now() + warmup * gap);
  const send = (i: number) => new Promise<void>((resolve) => {
    const planned = started + i * gap;
    const body = opts.bodies[i % opts.bodies.length]!;
    const counted = i >= warmup;
    const req = http.request({
      host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent,
      headers: { ...opts.headers, 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode !== undefined && res.statusCode < 300) {
          if (counted) {
            latencies.push(performance.now() - planned);
            timeline.push({ at: Math.round(planned - started - warmup * gap), ms: Math.round(performance.now() - planned) });
          }
        } else errors++;
        resolve();
      });
    });
    req.on('error', () => {
      errors++;
      resolve();
    });
    req.end(body);
  });
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < warmup + opts.requests; i++) {
    const wait = started + i * gap - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(send(i));
  }
  await Promise.all(inFlight);
  const seconds = (performance.now() - started) / 1000 - warmup * gap / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN);
  return { sent: opts.requests, ok: latencies.length, errors, seconds, countedFrom, p50: at(0.5), p99: at(0.99), max: Math.round(latencies.at(-1) ?? NaN),
    timeline: timeline.sort((a, b) => a.at - b.at),
    slowest: [...timeline].sort((a, b) => b.ms - a.ms).slice(0, 8).sort((a, b) => a.at - b.at) };
}
