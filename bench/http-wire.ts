// The load generators' HTTP/1.1 on raw sockets (bench/closed-load.ts, bench/paced-load.ts):
// requests prebuilt byte for byte, answers read only as far as their status line and
// Content-Length, so the generator, which shares the cores with what it loads, spends little CPU.
import net from 'node:net';

/** Each body as a whole POST request, head and body in one Buffer. */
export function requestsOnTheWire(url: URL, path: string, headers: Record<string, string>, bodies: readonly Buffer[]): Buffer[] {
  const head = (length: number) =>
    `POST ${path} HTTP/1.1\r\nhost: ${url.host}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}content-length: ${length}\r\n\r\n`;
  return bodies.map((b) => Buffer.concat([Buffer.from(head(b.length), 'latin1'), b]));
}

/**
 * A keep-alive connection that calls `onAnswer` with the status of each answer, in order. It is
 * `connected` once a GET of `greeting` has been answered on it: the server has taken it then (the
 * API's processes share their port through node:cluster, whose primary hands each connection to a
 * process: connectionsInTurn below). The promise `closed` settles when the socket closes;
 * `failed` tells whether it ended in an error.
 */
export function answeringConnection(url: URL, greeting: string, onAnswer: (status: number) => void): { socket: net.Socket; connected: Promise<void>; closed: Promise<void>; failed: () => boolean } {
  const socket = net.connect(Number(url.port), url.hostname);
  socket.setNoDelay(true);
  let buffered: Buffer = Buffer.alloc(0);
  let need = -1; // bytes of the current answer, once its head is read
  let status = 0;
  let error = false;
  let greeted: (() => void) | undefined;
  let refused: ((err: Error) => void) | undefined;
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
      if (greeted) {
        if (status < 300) greeted();
        else refused!(new Error(`GET ${greeting} answered ${status}`));
        greeted = refused = undefined;
      } else onAnswer(status);
    }
  });
  const connected = new Promise<void>((resolve, reject) => {
    greeted = resolve;
    refused = reject;
    socket.once('connect', () => socket.write(`GET ${greeting} HTTP/1.1\r\nhost: ${url.host}\r\n\r\n`));
    socket.once('error', reject);
  });
  const closed = new Promise<void>((resolve) => {
    socket.on('error', () => (error = true));
    socket.on('close', () => resolve());
  });
  return { socket, connected, closed, failed: () => error };
}

/**
 * `count` connections opened one after another, each greeted before the next is opened.
 * node:cluster's primary hands a connection to the first process free to take it, and a process
 * that has just taken one takes the next waiting too: with 16 connections opened at once, the
 * API's two processes served requests in shares of 12/4 to 14/2 (docs/benchmarks.md). Opened in
 * turn they alternate, as the connections of many producers arriving over time would.
 */
export async function connectionsInTurn<T extends { connected: Promise<void> }>(count: number, open: () => T): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < count; i++) {
    const conn = open();
    await conn.connected;
    out.push(conn);
  }
  return out;
}
