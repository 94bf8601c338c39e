import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import net from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { TemporalHealth } from '../api/temporal-health.js';
import { eventually } from './support/eventually.js';

// The probe of Temporal that ingest checks before it accepts: requests are answered from the last
// "yes" while a fresh probe runs, and see the "no" once the probe fails. Temporal is the dev
// server, reached through a TCP relay that the test can freeze (Temporal stops answering).

let relay: net.Server;
let frozen = false;
let connection: Connection;
let client: Client;

beforeAll(async () => {
  const [host, port] = inject('stackEnv').TEMPORAL_ADDRESS!.split(':');
  relay = net.createServer((down) => {
    const up = net.connect(Number(port), host);
    down.on('data', (d) => void (frozen || up.write(d)));
    up.on('data', (d) => void (frozen || down.write(d)));
    for (const [a, b] of [[down, up], [up, down]] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  connection = await Connection.connect({ address: `127.0.0.1:${(relay.address() as net.AddressInfo).port}` });
  client = new Client({ connection });
});

afterAll(async () => {
  await connection?.close().catch(() => undefined);
  relay?.close();
});

describe('TemporalHealth', () => {
  it('answers from the last yes while a new probe runs, and says no once that probe fails', async () => {
    const health = new TemporalHealth(client, 500, 1_000);
    await health.check(); // a real answer through the relay
    frozen = true; // from here Temporal answers nothing
    await new Promise((r) => setTimeout(r, 1_100)); // the yes is older than cacheMs, not 2 × cacheMs
    await health.check(); // answered from the last yes...
    expect(health.probing).toBe(true); // ...while the probe it started hangs
    await eventually(async () => expect(health.probing).toBe(false)); // the probe's deadline passes
    await expect(health.check()).rejects.toThrow(); // and now ingest would answer 503
  });
});

describe('TemporalHealth kept fresh', () => {
  it('after a quiet spell the first check does not wait for a probe', async () => {
    frozen = false;
    // A connection of its own: the one above lost bytes in the relay while frozen.
    const fresh = await Connection.connect({ address: `127.0.0.1:${(relay.address() as net.AddressInfo).port}` });
    const health = new TemporalHealth(new Client({ connection: fresh }), 500, 300);
    health.keepFresh();
    try {
      await new Promise((r) => setTimeout(r, 1_000)); // quiet for more than 2 × cacheMs
      frozen = true; // a probe started now would hang until its deadline
      const started = Date.now();
      await health.check(); // answered from the background probe's yes
      expect(Date.now() - started).toBeLessThan(250);
      await eventually(async () => expect(health.check()).rejects.toThrow()); // the background probe sees Temporal gone
    } finally {
      health.stop();
      frozen = false;
      await fresh.close().catch(() => undefined);
    }
  });
});
