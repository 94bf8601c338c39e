// Full speed, closed loop: each connection sends its next request as soon as the previous answer
// has arrived. Requests are prebuilt byte for byte and answers are read only as far as their status
// line and Content-Length, so the load generator, which shares the cores with the stack it loads,
// spends little CPU on them (docs/benchmarks.md: autocannon took 1.1–2.3 ms per request there).
import net from 'node:net';

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
  headers: Record<string, string>;
  bodies: readonly Buffer[];
  requests: number;
  connections: number;
}): Promise<ClosedRun> {
  const target = new URL(opts.url);
  const head = (length: number) =>
    `POST ${opts.path} HTTP/1.1\r\nhost: ${target.host}\r\n${Object.entries(opts.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}content-length: ${length}\r\n\r\n`;
  const wire = opts.bodies.map((b) => Buffer.concat([Buffer.from(head(b.length), 'latin1'), b]));
  const latencies: number[] = [];
  let ok = 0, non2xx = 0, errors = 0, sent = 0;
  const started = performance.now();
  let last = started;
  const connection = () => new Promise<void>((resolve) => {
    const socket = net.connect(Number(target.port), target.hostname);
    socket.setNoDelay(true);
    let buffered: Buffer = Buffer.alloc(0);
    let need = -1; // bytes of the current answer, once its head is read
    let status = 0;
    let sentAt = 0;
    const next = () => {
      if (sent >= opts.requests) return void socket.end();
      sentAt = performance.now();
      socket.write(wire[sent++ % wire.length]!);
    };
    socket.on('connect', next);
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      for (;;) {
        if (need < 0) {
          const end = buffered.indexOf('\r\n\r\n');
          if (end < 0) return;
          const text = buffered.subarray(0, end).toString('latin1');
          const length = /\r\ncontent-length: *(\d+)/i.exec(text);
          if (!length) throw new Error(`an answer without Content-Length: ${text.split('\r\n')[0]}`);
          status = Number(text.slice(9, 12));
          need = end + 4 + Number(length[1]);
        }
        if (buffered.length < need) return;
        buffered = buffered.subarray(need);
        need = -1;
        last = performance.now();
        if (status < 300) {
          ok++;
          latencies.push(last - sentAt);
        } else non2xx++;
        next();
      }
    });
    socket.on('error', () => {
      errors++;
      resolve();
    });
    socket.on('close', () => resolve());
  });
  await Promise.all(Array.from({ length: opts.connections }, connection));
  latencies.sort((a, b) => a - b);
  const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN);
  return { ok, non2xx, errors, seconds: (last - started) / 1000, p50: at(0.5), p99: at(0.99) };
}
