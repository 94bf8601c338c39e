import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root and the tools `scripts/bootstrap.mjs` installs into ignored folders of it. */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const venvBin = path.join(projectRoot, '.tools', 'venv', 'bin');
export const temporalCli = path.join(venvBin, 'temporal');
export const temporalTestServer = path.join(venvBin, 'temporal-test-server');
export const bqEmulator = path.join(venvBin, 'bqemulator');
/** A HOME of the emulator's own, where bootstrap put DuckDB's spatial extension so nothing is downloaded. */
export const bqEmulatorHome = path.join(projectRoot, '.tools', 'bqemulator-home');
