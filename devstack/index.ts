import fs from 'node:fs';
import path from 'node:path';
import { startBigQueryEmulator, type BigQueryEmulator } from './bigquery-emulator.js';
import { startEmbeddedPostgres } from './postgres.js';
import { assertPortFree, freePort } from './process.js';
import { startTemporalDevServer } from './temporal.js';

/** Where each piece of the local stack listens, in the environment variables Tally's config reads. */
export interface LocalStack {
  env: Record<string, string>;
  /** What runs where, for people. */
  places: { name: string; where: string }[];
  /** The BigQuery emulator's cgroup, when `emulatorCpuGroup` asked for one. */
  emulatorCpuGroup?: BigQueryEmulator['cpuGroup'];
  stop(): Promise<void>;
}

export interface LocalStackOptions {
  /** Folder for logs and, when persistent, data. */
  dataDir: string;
  /** Keep data across restarts (npm start) or start empty and in memory (tests). */
  persistent: boolean;
  /** Fixed ports (npm start) or free ones (tests). */
  ports: 'default' | 'free';
  /** Pieces that come from outside (the variable is set) are not started. */
  external?: Record<string, string | undefined>;
  /** Niceness of the BigQuery emulator (bigquery-emulator.ts); 0 unless given. */
  emulatorNiceness?: number;
  /** Run the BigQuery emulator in a cgroup of its own, whose cap the caller sets (bigquery-emulator.ts). */
  emulatorCpuGroup?: boolean;
}

const defaultPorts = { temporal: 7233, temporalUi: 8233, postgres: 5433, bigquery: 9050, bigqueryGrpc: 9060 };

export async function startLocalStack(opts: LocalStackOptions): Promise<LocalStack> {
  const external = opts.external ?? {};
  const logDir = path.join(opts.dataDir, 'logs');
  fs.mkdirSync(logDir, { recursive: true });
  const ports = opts.ports === 'default' ? defaultPorts : await pickFreePorts();
  const env: Record<string, string> = {};
  const places: LocalStack['places'] = [];
  const stops: (() => Promise<void>)[] = [];
  let emulatorCpuGroup: LocalStack['emulatorCpuGroup'];

  const starts: Promise<void>[] = [];
  if (external.TEMPORAL_ADDRESS === undefined) {
    starts.push((async () => {
      if (opts.ports === 'default') {
        await assertPortFree(ports.temporal, 'Temporal');
        await assertPortFree(ports.temporalUi, 'the Temporal UI');
      }
      const temporal = await startTemporalDevServer({
        port: ports.temporal,
        uiPort: ports.temporalUi,
        dbFile: opts.persistent ? path.join(opts.dataDir, 'temporal.sqlite') : undefined,
        logDir,
      });
      stops.push(() => temporal.process.stop());
      env.TEMPORAL_ADDRESS = temporal.address;
      env.TEMPORAL_UI_URL = temporal.uiUrl;
      places.push({ name: 'Temporal server', where: temporal.address }, { name: 'Temporal UI', where: temporal.uiUrl });
    })());
  }
  if (external.DATABASE_URL === undefined) {
    starts.push((async () => {
      if (opts.ports === 'default') await assertPortFree(ports.postgres, 'Postgres');
      const db = await startEmbeddedPostgres({
        dataDir: path.join(opts.dataDir, 'postgres'),
        port: ports.postgres,
        logDir,
        choosePort: opts.ports === 'free' ? freePort : undefined,
      });
      stops.push(() => db.stop());
      env.DATABASE_URL = db.databaseUrl;
      places.push({ name: 'Postgres (billing DB)', where: db.databaseUrl });
    })());
  }
  if (external.BIGQUERY_API_ENDPOINT === undefined) {
    starts.push((async () => {
      if (opts.ports === 'default') await assertPortFree(ports.bigquery, 'the BigQuery emulator');
      const bigquery = await startBigQueryEmulator({
        port: ports.bigquery,
        grpcPort: ports.bigqueryGrpc,
        projectId: external.BIGQUERY_PROJECT ?? 'tally-local',
        dataDir: opts.persistent ? ensureDir(path.join(opts.dataDir, 'bigquery')) : undefined,
        logDir,
        niceness: opts.emulatorNiceness,
        cpuGroup: opts.emulatorCpuGroup,
        choosePorts: opts.ports === 'free' ? async () => ({ port: await freePort(), grpcPort: await freePort() }) : undefined,
      });
      emulatorCpuGroup = bigquery.cpuGroup;
      stops.push(() => bigquery.process.stop());
      env.BIGQUERY_API_ENDPOINT = bigquery.apiEndpoint;
      places.push({ name: 'BigQuery emulator', where: bigquery.apiEndpoint });
    })());
  }

  const stop = async () => {
    await Promise.allSettled(stops.map((s) => s()));
  };
  const results = await Promise.allSettled(starts);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  return { env, places, emulatorCpuGroup, stop };
}

async function pickFreePorts(): Promise<typeof defaultPorts> {
  return {
    temporal: await freePort(),
    temporalUi: await freePort(),
    postgres: await freePort(),
    bigquery: await freePort(),
    bigqueryGrpc: await freePort(),
  };
}

function ensureDir(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}
