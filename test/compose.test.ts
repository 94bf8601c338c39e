import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { searchAttributes } from '../devstack/temporal.js';
import { projectRoot } from '../devstack/tools.js';

/**
 * Static checks of docker-compose.yml and the Dockerfile: no Docker engine runs here, so this is what
 * keeps them honest against the repository (paths, stages, service names, config names). Each check
 * lists problems; the second block breaks a copy of the stack to show that every check can fail.
 */

interface Service {
  image?: unknown;
  build?: unknown;
  command?: unknown;
  entrypoint?: unknown;
  volumes?: unknown;
  depends_on?: unknown;
  environment?: unknown;
  ports?: unknown;
}
interface Compose {
  services: Record<string, Service>;
}
interface Stack {
  compose: Compose;
  /** A repository file by its path from the root; undefined when it does not exist. */
  read(rel: string): string | undefined;
  exists(rel: string): boolean;
}

function loadStack(): Stack {
  const abs = (rel: string) => path.join(projectRoot, rel);
  const exists = (rel: string) => fs.existsSync(abs(rel));
  const read = (rel: string) => (exists(rel) && fs.statSync(abs(rel)).isFile() ? fs.readFileSync(abs(rel), 'utf8') : undefined);
  const compose = parse(read('docker-compose.yml') ?? '', { merge: true }) as Compose;
  return { compose, read, exists };
}

/** The same stack with one file's text replaced (the edited copy a breakage test needs). */
function withFile(stack: Stack, rel: string, text: string): Stack {
  return { ...stack, read: (r) => (r === rel ? text : stack.read(r)) };
}

function withCompose(stack: Stack, edit: (services: Record<string, Service>) => void): Stack {
  const compose = structuredClone(stack.compose);
  edit(compose.services);
  return { ...stack, compose };
}

// ---- reading compose and Dockerfile shapes ---------------------------------------------------------

const services = (stack: Stack) => Object.entries(stack.compose.services ?? {});
const words = (value: unknown): string[] =>
  typeof value === 'string' ? value.split(/\s+/).filter(Boolean) : Array.isArray(value) ? value.map(String) : [];
const repoPath = (...parts: string[]) => path.posix.normalize(path.posix.join(...parts)).replace(/^\.\//, '');

function buildOf(service: Service): { context: string; dockerfile: string; target?: string } | undefined {
  const build = service.build;
  if (typeof build === 'string') return { context: build, dockerfile: 'Dockerfile' };
  if (!build || typeof build !== 'object') return undefined;
  const { context = '.', dockerfile = 'Dockerfile', target } = build as Record<string, string | undefined>;
  return { context, dockerfile, target };
}

/** Host → container pairs of bind mounts, in short (`./a:/b:ro`) or long (`type: bind`) syntax. */
function bindMounts(service: Service): { source: string; target: string }[] {
  return (Array.isArray(service.volumes) ? service.volumes : []).flatMap((v: unknown) => {
    if (typeof v === 'string') {
      const [source = '', target = ''] = v.split(':');
      return /^[./~]/.test(source) ? [{ source, target }] : [];
    }
    const long = v as { type?: string; source?: string; target?: string };
    return long.type === 'bind' && long.source ? [{ source: long.source, target: long.target ?? '' }] : [];
  });
}

const dependencies = (service: Service): string[] =>
  Array.isArray(service.depends_on) ? service.depends_on.map(String) : Object.keys((service.depends_on as object | undefined) ?? {});

const envNames = (service: Service): string[] =>
  Array.isArray(service.environment)
    ? service.environment.map((e) => String(e).split('=')[0] ?? '')
    : Object.keys((service.environment as object | undefined) ?? {});

function publishes(service: Service, host: number, container: number): boolean {
  return (Array.isArray(service.ports) ? service.ports : []).some((p: unknown) => {
    if (typeof p === 'object' && p) return Number((p as { published?: unknown }).published) === host && Number((p as { target?: unknown }).target) === container;
    const parts = String(p).replace(/\/\w+$/, '').split(':');
    return Number(parts.at(-1)) === container && Number(parts.at(-2)) === host;
  });
}

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function instructions(dockerfile: string): { keyword: string; args: string }[] {
  return dockerfile
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

const stages = (dockerfile: string) =>
  instructions(dockerfile).flatMap(({ keyword, args }) => (keyword === 'FROM' ? (/\bAS\s+(\S+)/i.exec(args)?.slice(1) ?? []) : []));

/** COPY instructions that read the build context (not `--from=` another stage): their sources and destination. */
function contextCopies(dockerfile: string): { sources: string[]; destination: string }[] {
  return instructions(dockerfile).flatMap(({ keyword, args }) => {
    if (keyword !== 'COPY' || /--from=/.test(args)) return [];
    const operands = args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/).filter((a) => !a.startsWith('--'));
    return [{ sources: operands.slice(0, -1), destination: operands.at(-1)! }];
  });
}

const copySources = (dockerfile: string) => contextCopies(dockerfile).flatMap((c) => c.sources);

/** The build-context file a single-source COPY puts at `destination` in the image, if one does. */
const copiedTo = (dockerfile: string, destination: string) =>
  contextCopies(dockerfile).find((c) => c.sources.length === 1 && c.destination === destination)?.sources[0];

// ---- the checks ------------------------------------------------------------------------------------

type Check = (stack: Stack) => string[];

const everyServiceHasImageOrBuild: Check = (stack) =>
  services(stack).flatMap(([name, s]) => (s.image || s.build ? [] : [`${name}: neither image nor build`]));

const buildsPointIntoTheRepo: Check = (stack) =>
  services(stack).flatMap(([name, s]) => {
    const build = buildOf(s);
    if (!build) return [];
    const dockerfilePath = repoPath(build.context, build.dockerfile);
    const dockerfile = stack.read(dockerfilePath);
    if (!stack.exists(repoPath(build.context))) return [`${name}: build context ${build.context} does not exist`];
    if (dockerfile === undefined) return [`${name}: ${dockerfilePath} does not exist`];
    return build.target && !stages(dockerfile).includes(build.target) ? [`${name}: target ${build.target} is no FROM … AS stage of ${dockerfilePath}`] : [];
  });

const bindMountedPathsExist: Check = (stack) =>
  services(stack).flatMap(([name, s]) =>
    bindMounts(s).flatMap(({ source }) => (stack.exists(repoPath(source)) ? [] : [`${name}: bind-mounted ${source} does not exist`])),
  );

const dependenciesAreServices: Check = (stack) =>
  services(stack).flatMap(([name, s]) =>
    dependencies(s).flatMap((dep) => (dep in stack.compose.services ? [] : [`${name}: depends_on ${dep}, which is no service`])),
  );

const copySourcesExist: Check = (stack) => {
  const built = new Map(services(stack).flatMap(([, s]) => { const b = buildOf(s); return b ? [[repoPath(b.context, b.dockerfile), b.context] as const] : []; }));
  return [...built].flatMap(([dockerfilePath, context]) =>
    copySources(stack.read(dockerfilePath) ?? '').flatMap((src) => (stack.exists(repoPath(context, src)) ? [] : [`${dockerfilePath}: COPY ${src} is not in the build context`])),
  );
};

/** Scripts a command runs: repo files for built images, bind-mounted host files for the rest. */
const commandScriptsExist: Check = (stack) => {
  const problems = services(stack).flatMap(([name, s]) =>
    [...words(s.entrypoint), ...words(s.command)].flatMap((word) => {
      if (!/\.(ts|sh|py)$/.test(word)) return [];
      const mount = bindMounts(s).find(({ target }) => word.startsWith(`${target}/`));
      const build = buildOf(s);
      let host: string | undefined;
      if (mount) host = repoPath(mount.source, word.slice(mount.target.length + 1));
      else if (build && word.startsWith('/')) {
        // An absolute path in a built image is where a COPY of its Dockerfile put a file of the repo.
        const copied = copiedTo(stack.read(repoPath(build.context, build.dockerfile)) ?? '', word);
        if (copied === undefined) return [`${name}: runs ${word}, which no COPY of its Dockerfile puts there`];
        host = repoPath(build.context, copied);
      } else if (build) host = repoPath(build.context, word);
      return host === undefined || stack.exists(host) ? [] : [`${name}: runs ${word}, but ${host} does not exist`];
    }),
  );
  const expected = { api: 'api/main.ts', worker: 'workers/main.ts', 'zuora-sandbox': 'zuora-sandbox/main.ts' };
  for (const [name, script] of Object.entries(expected)) {
    if (!words(stack.compose.services[name]?.command).includes(script)) problems.push(`${name}: command does not run ${script}`);
  }
  return problems;
};

const imageOf = (s: Service) => (typeof s.image === 'string' ? s.image : '');

const noDeprecatedAutoSetup: Check = (stack) =>
  services(stack).flatMap(([name, s]) => (imageOf(s).includes('temporalio/auto-setup') ? [`${name}: uses the deprecated ${imageOf(s)}`] : []));

/** Today's pattern: temporalio/server waits for a one-shot admin-tools job that must succeed. */
const temporalServerAfterSchemaJob: Check = (stack) => {
  const server = services(stack).find(([, s]) => imageOf(s).startsWith('temporalio/server'));
  if (!server) return ['no temporalio/server service'];
  const conditions = Object.entries((server[1].depends_on as Record<string, { condition?: string }> | undefined) ?? {});
  const ok = conditions.some(([dep, { condition }]) =>
    condition === 'service_completed_successfully' && imageOf(stack.compose.services[dep] ?? {}).startsWith('temporalio/admin-tools'));
  return ok ? [] : [`${server[0]}: does not wait for an admin-tools schema job to complete successfully`];
};

const temporalUiIsServed: Check = (stack) =>
  services(stack).some(([, s]) => imageOf(s).startsWith('temporalio/ui') && publishes(s, 8233, 8080))
    ? []
    : ['no temporalio/ui service publishing 8233→8080'];

const searchAttributesAreRegistered: Check = (stack) => {
  const script = stack.read('docker/temporal/register-namespace.sh') ?? '';
  return Object.entries(searchAttributes).flatMap(([name, type]) =>
    new RegExp(`^retry .*ensure_search_attribute ${name} ${type}$`, 'm').test(script) ? [] : [`search attribute ${name} (${type}) is not registered`]);
};

const tallyEnvIsConfig: Check = (stack) => {
  const config = stack.read('core/config.ts') ?? '';
  return ['api', 'worker'].flatMap((name) => {
    const service = stack.compose.services[name];
    if (!service) return [`no ${name} service`];
    return envNames(service).flatMap((env) => (new RegExp(`\\b${env}\\b`).test(config) ? [] : [`${name}: ${env} is no setting in core/config.ts`]));
  });
};

const dockerignoreKeepsContextSmall: Check = (stack) => {
  const ignored = (stack.read('.dockerignore') ?? '').split(/\r?\n/).map((l) => l.trim().replace(/^\/|\/$/g, ''));
  return ['node_modules', '.tools', '.data', '.git'].flatMap((dir) => (ignored.includes(dir) ? [] : [`.dockerignore does not exclude ${dir}`]));
};

const checks: { name: string; check: Check }[] = [
  { name: 'every service has an image or a build', check: everyServiceHasImageOrBuild },
  { name: 'build contexts, Dockerfiles and targets exist', check: buildsPointIntoTheRepo },
  { name: 'bind-mounted host paths exist', check: bindMountedPathsExist },
  { name: 'depends_on names defined services', check: dependenciesAreServices },
  { name: 'Dockerfile COPY sources exist', check: copySourcesExist },
  { name: 'commands run scripts that exist', check: commandScriptsExist },
  { name: 'no temporalio/auto-setup image', check: noDeprecatedAutoSetup },
  { name: 'temporal server waits for the schema job', check: temporalServerAfterSchemaJob },
  { name: 'the Temporal UI is served on 8233', check: temporalUiIsServed },
  { name: 'search attributes match devstack', check: searchAttributesAreRegistered },
  { name: 'api and worker env names are settings of core/config.ts', check: tallyEnvIsConfig },
  { name: '.dockerignore keeps the context small', check: dockerignoreKeepsContextSmall },
];

describe('docker-compose.yml and Dockerfile', () => {
  const stack = loadStack();

  it('parses, with the services of the topology', () => {
    expect(Object.keys(stack.compose.services)).toEqual(
      expect.arrayContaining(['postgresql', 'billing-db', 'temporal', 'temporal-ui', 'bigquery-emulator', 'zuora-sandbox', 'api', 'worker']),
    );
  });

  it.each(checks)('$name', ({ check }) => {
    expect(check(stack)).toEqual([]);
  });
});

describe('each check fails on the mistake it guards against', () => {
  const stack = loadStack();
  const dockerfile = stack.read('Dockerfile') ?? '';
  const breakages: { name: string; check: Check; broken: () => Stack; expected: RegExp }[] = [
    { name: 'a service without image or build', check: everyServiceHasImageOrBuild, broken: () => withCompose(stack, (s) => { s.extra = { command: 'true' }; }), expected: /extra: neither/ },
    { name: 'a missing build context', check: buildsPointIntoTheRepo, broken: () => withCompose(stack, (s) => { s.api!.build = { context: './nowhere' }; }), expected: /api: build context/ },
    { name: 'a missing Dockerfile', check: buildsPointIntoTheRepo, broken: () => withCompose(stack, (s) => { s.api!.build = { context: '.', dockerfile: 'Nope.Dockerfile' }; }), expected: /Nope\.Dockerfile does not exist/ },
    { name: 'an unknown build target', check: buildsPointIntoTheRepo, broken: () => withCompose(stack, (s) => { s.api!.build = { context: '.', target: 'nope' }; }), expected: /target nope/ },
    { name: 'a missing bind-mounted path', check: bindMountedPathsExist, broken: () => withCompose(stack, (s) => { s.temporal!.volumes = ['./docker/missing:/x']; }), expected: /docker\/missing/ },
    { name: 'depends_on an undefined service', check: dependenciesAreServices, broken: () => withCompose(stack, (s) => { s.api!.depends_on = ['ghost']; }), expected: /ghost/ },
    { name: 'a COPY of a missing folder', check: copySourcesExist, broken: () => withFile(stack, 'Dockerfile', `${dockerfile}\nCOPY no-such-folder ./no-such-folder\n`), expected: /COPY no-such-folder/ },
    { name: 'a command running a missing script', check: commandScriptsExist, broken: () => withCompose(stack, (s) => { s.api!.command = ['npx', 'tsx', 'api/missing.ts']; }), expected: /api\/missing\.ts/ },
    { name: 'a command running an image path nothing copies', check: commandScriptsExist, broken: () => withCompose(stack, (s) => { s['bigquery-emulator']!.command = ['python', '/usr/local/lib/tally/missing.py']; }), expected: /missing\.py, which no COPY/ },
    { name: 'a one-shot script missing from its bind mount', check: commandScriptsExist, broken: () => withCompose(stack, (s) => { s['temporal-schema']!.command = ['/tally/temporal/missing.sh']; }), expected: /docker\/temporal\/missing\.sh/ },
    { name: 'the auto-setup image', check: noDeprecatedAutoSetup, broken: () => withCompose(stack, (s) => { s.temporal!.image = 'temporalio/auto-setup:1.29.1'; }), expected: /deprecated/ },
    { name: 'a server that does not wait for the schema', check: temporalServerAfterSchemaJob, broken: () => withCompose(stack, (s) => { s.temporal!.depends_on = ['postgresql']; }), expected: /does not wait/ },
    { name: 'no Temporal UI', check: temporalUiIsServed, broken: () => withCompose(stack, (s) => { delete s['temporal-ui']; }), expected: /temporalio\/ui/ },
    { name: 'a search attribute left out', check: searchAttributesAreRegistered, broken: () => withFile(stack, 'docker/temporal/register-namespace.sh', ''), expected: /OrgId/ },
    { name: 'an env name that is no setting', check: tallyEnvIsConfig, broken: () => withCompose(stack, (s) => { s.worker!.environment = { TEMPORAL_HOST: 'temporal' }; }), expected: /TEMPORAL_HOST/ },
    { name: 'node_modules sent to the build', check: dockerignoreKeepsContextSmall, broken: () => withFile(stack, '.dockerignore', '.git\n'), expected: /node_modules/ },
  ];

  it.each(breakages)('$name', ({ check, broken, expected }) => {
    expect(check(broken()).join('\n')).toMatch(expected);
  });
});
