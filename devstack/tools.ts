import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root and the tools `scripts/bootstrap.mjs` installs into ignored folders of it. */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const venvBin = path.join(projectRoot, '.tools', 'venv', 'bin');
export const temporalCli = path.join(venvBin, 'temporal');
export const temporalTestServer = path.join(venvBin, 'temporal-test-server');
export const venvPython = path.join(venvBin, 'python3');
/** Starts bqemulator without its automatic time-travel copies (the file says why). */
export const bqEmulatorStart = path.join(projectRoot, 'devstack', 'bqemulator-start.py');
/** A HOME of the emulator's own, where bootstrap put DuckDB's spatial extension so nothing is downloaded. */
export const bqEmulatorHome = path.join(projectRoot, '.tools', 'bqemulator-home');
