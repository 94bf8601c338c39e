import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SandboxSnapshot } from './model.js';

/** A data file the sandbox cannot use; it stops rather than start over on an empty tenant. */
export class SandboxDataFileError extends Error {
  readonly code = 'ZUORA_SANDBOX_DATA_FILE';
  constructor(file: string, reason: string) {
    super(`cannot use Zuora sandbox data file ${file}: ${reason}`);
    this.name = 'SandboxDataFileError';
  }
}

/** The tenant kept in `file`, or undefined when there is none yet (its folder is made ready). */
export function readSnapshot(file: string): SandboxSnapshot | undefined {
  mkdirSync(dirname(file), { recursive: true });
  if (!existsSync(file)) return undefined;
  let snapshot: SandboxSnapshot;
  try {
    snapshot = JSON.parse(readFileSync(file, 'utf8')) as SandboxSnapshot;
  } catch (error) {
    throw new SandboxDataFileError(file, `not readable JSON (${(error as Error).message})`);
  }
  if (snapshot?.version !== 1) {
    throw new SandboxDataFileError(file, `unknown layout version ${JSON.stringify(snapshot?.version)}`);
  }
  return snapshot;
}

/** Writes a temporary file and renames it over `file`, so a crash never leaves half a tenant. */
export function writeSnapshot(file: string, snapshot: SandboxSnapshot): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(snapshot));
  renameSync(tmp, file);
}
