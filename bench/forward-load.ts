import { decodeMulti, encode } from '@msgpack/msgpack';
import net from 'node:net';
import { quantile } from './results.js';

export interface ForwardLoadResult {
  eventsPerSecond: number;
  messages: number;
  p50: number;
  p99: number;
  errors: number;
}

/**
 * Fluentd senders on `connections` sockets, each sending Forward-mode messages of `batch`
 * records and waiting for the ack before the next: the way fluent-bit or fluentd forward with
 * `require_ack_response`. Each record is one amount, as the original Go client sends them.
 */
export async function forwardLoad(opts: { port: number; connections: number; messages: number; batch: number; prefix: string; day: string }): Promise<ForwardLoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const sender = async (c: number) => {
    const socket = net.connect(opts.port, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const acks: ((chunk: string) => void)[] = [];
    let pending = Buffer.alloc(0);
    socket.on('data', (data) => {
      pending = Buffer.concat([pending, data]);
      try {
        for (const ack of decodeMulti(pending) as Iterable<{ ack: string }>) acks.shift()?.(ack.ack);
        pending = Buffer.alloc(0);
      } catch {
        // an ack split across reads: wait for the rest
      }
    });
    for (let m = next++; m < opts.messages; m = next++) {
      const time = Math.floor(Date.now() / 1000);
      const entries = Array.from({ length: opts.batch }, (_, i) => [time, {
        unique_key: `${opts.prefix}-${m}-${i}:container-seconds`,
        internal_instance_id: `bench-instance-${i % 50}`,
        amount_type: 'container-seconds',
        amount_value: 1 + (i % 3600),
        occurred_at: `${opts.day}T00:${String(i % 60).padStart(2, '0')}:00Z`,
        metadata: { service: 'bench' },
      }]);
      const chunk = `${c}-${m}`;
      const sent = performance.now();
      const acked = new Promise<string>((resolve) => acks.push(resolve));
      socket.write(encode(['billing', entries, { chunk }]));
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 60_000).unref());
      if ((await Promise.race([acked, timeout])) !== chunk) errors++;
      latencies.push(performance.now() - sent);
    }
    socket.end();
  };
  await Promise.all(Array.from({ length: opts.connections }, (_, c) => sender(c)));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { eventsPerSecond: ((opts.messages - errors) * opts.batch) / seconds, messages: opts.messages, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), errors };
}
