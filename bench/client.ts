import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { Registry } from 'prom-client';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BillingClient, ContainerSeconds, DEFAULT_CONFIG, NodeSeconds } from '../client/index.js';
import { writeBenchmarkSection } from './results.js';

// How fast addAmounts takes events and what a full buffer costs in memory. No network in the
// measured loops: they are synchronous, so the client's sender cannot run until they end, and
// the client points at a port nothing listens on. The baseline pushes the same inputs, unchecked
// and uncopied, into a plain array: what buffering costs at the very least. Memory is measured in
// a fresh process per case: in one process, RSS freed by one case hides what the next one takes.

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const LARGE = Number(process.env.BENCH_LARGE_BUFFER ?? 1_000_000);
const SMALL = DEFAULT_CONFIG.maxBufferedEvents;
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
// A distinct timestamp per call, made before the timed loops (the baseline pushes the same ones).
const firstStamp = Date.now();
const stamps = Array.from({ length: 1 << 20 }, (_, i) => new Date(firstStamp - i * 1000));
const at = (i: number) => stamps[i & ((1 << 20) - 1)]!;
const amounts = { [ContainerSeconds]: 60, [NodeSeconds]: 1 };
const metadata = { pod: 'pod-1' };
const registry = new Registry();
const newClient = (capacity: number) =>
  new BillingClient({ url: 'http://127.0.0.1:9', logger: quiet, registry, maxBufferedEvents: capacity, maxBatchEvents: 1000, flushIntervalMs: 3_600_000 });

/** Calls per second of `fill` over n calls. */
function rate(n: number, fill: (i: number) => void): number {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fill(i);
  return n / (Number(process.hrtime.bigint() - started) / 1e9);
}

type Case = 'baseline' | 'large' | 'small';
/** In a fresh process: heap and RSS taken by one full buffer of the case, after a forced GC. */
function memoryOf(kind: Case): { heap: number; rss: number; events: number } {
  const events = kind === 'small' ? SMALL : LARGE;
  gc();
  const before = process.memoryUsage();
  const held: unknown[] = [];
  if (kind === 'baseline') {
    for (let i = 0; i < events; i++) held.push({ uniqueKey: `k-${i}`, internalInstanceId: 'inst', timestamp: at(i), amounts, metadata });
  } else {
    const c = newClient(events);
    for (let i = 0; i < events; i++) c.addAmounts(`k-${i}`, 'inst', at(i), amounts, metadata);
    held.push(c);
  }
  gc();
  const after = process.memoryUsage();
  // `held` is read after the GC so that the buffer is still alive when memory is sampled.
  return { heap: after.heapUsed - before.heapUsed, rss: after.rss - before.rss, events: held.length > 0 ? events : 0 };
}

if (process.env.BENCH_CLIENT_MEMORY) {
  process.stdout.write(JSON.stringify(memoryOf(process.env.BENCH_CLIENT_MEMORY as Case)));
  process.exit(0);
}

function baselineRate(n: number): number {
  let held: object[] = [];
  const r = rate(n, (i) => held.push({ uniqueKey: `k-${i}`, internalInstanceId: 'inst', timestamp: at(i), amounts, metadata }));
  held = [];
  return r;
}

/** Filling a buffer of `capacity` (`clients` of them, timed loops only), then calls against the full one. */
async function clientRates(capacity: number, clients = 1): Promise<{ filling: number; full: number }> {
  let seconds = 0;
  let full = 0;
  for (let k = 0; k < clients; k++) {
    const c = newClient(capacity);
    seconds += capacity / rate(capacity, (i) => c.addAmounts(`k-${i}`, 'inst', at(i), amounts, metadata));
    // The buffer is full now: what a caller pays to hear `buffer_full` (overflow: reject, counted in a metric).
    if (k === 0) full = rate(200_000, (i) => c.addAmounts(`f-${i}`, 'inst', at(i), amounts, metadata));
    await c.close(0);
  }
  return { filling: (capacity * clients) / seconds, full };
}

// Warm up every path so the JIT has compiled it before anything is timed.
baselineRate(200_000);
await clientRates(200_000);

const rounds = 3;
const runs = { baseline: [] as number[], large: [] as Array<{ filling: number; full: number }>, small: [] as Array<{ filling: number; full: number }> };
for (let r = 0; r < rounds; r++) {
  runs.baseline.push(baselineRate(LARGE));
  runs.large.push(await clientRates(LARGE));
  runs.small.push(await clientRates(SMALL, 500)); // one fill of 1024 is too short to time on its own
  gc();
}
const memory = Object.fromEntries((['baseline', 'large', 'small'] as const).map((kind) => [kind, JSON.parse(execFileSync(
  process.execPath, [...process.execArgv, process.argv[1]!], { env: { ...process.env, BENCH_CLIENT_MEMORY: kind }, encoding: 'utf8' },
)) as ReturnType<typeof memoryOf>])) as Record<Case, ReturnType<typeof memoryOf>>;

const best = (xs: number[]) => Math.max(...xs);
const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
const size = (bytes: number) => (Math.abs(bytes) >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MB` : `${(bytes / 1024).toFixed(0)} KB`);
const row = (what: string, calls: number, kind?: Case) => {
  const m = kind ? memory[kind] : undefined;
  return `| ${what} | ${fmt(calls)} | ${m ? size(m.heap) : ''} | ${m ? size(m.rss) : ''} | ${m ? Math.round(m.heap / m.events) : ''} |`;
};
const large = best(runs.large.map((r) => r.filling));
const base = best(runs.baseline);

const section = `## Client (\`npm run bench:client\`)

Run ${new Date().toISOString()} on ${os.cpus().length} cores (${os.cpus()[0]?.model.trim() ?? 'unknown'}), Node ${process.version}.
\`addAmounts\` of one event with 2 amount types and 1 metadata entry, in a synchronous loop (no network:
nothing can be sent until the loop ends); best of ${rounds} rounds. Every call passes its own Date and its own
key. Memory: heapUsed and RSS taken by one full buffer, after a forced GC, each case in a fresh process.

| what | calls/s | heapUsed | RSS | bytes/event (heap) |
| --- | ---: | ---: | ---: | ---: |
${row(`baseline: push the same inputs into a plain array, ${fmt(LARGE)} events`, base, 'baseline')}
${row(`client, buffer of ${fmt(LARGE)}, filling it`, large, 'large')}
${row(`client, buffer of ${fmt(LARGE)}, full (\`buffer_full\` answered and counted)`, best(runs.large.map((r) => r.full)))}
${row(`client, default buffer of ${SMALL}, filling it (500 clients in a row)`, best(runs.small.map((r) => r.filling)), 'small')}
${row(`client, default buffer of ${SMALL}, full`, best(runs.small.map((r) => r.full)))}

Ratio client / baseline (filling the large buffer): **${(large / base).toFixed(2)}**. Target: ≥ 1,000,000 calls/s.
The client validates every argument, copies \`amounts\` and \`metadata\` (so a caller reusing its
objects cannot change a buffered event) and copies the Date (formatted as RFC 3339 only when a batch is sent); the baseline does none of it. A buffer of a million events costs its GC time: the default buffer (1024, the Go client's) is the one producers run with.
`;

process.stdout.write(`${section}\n`);
const docPath = writeBenchmarkSection('Client', section);
process.stdout.write(`wrote the Client section of ${docPath}\n`);
