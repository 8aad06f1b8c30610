/**
 * Fleet as an installable package: `npm pack` the checkout (dist/ is built by the test
 * run's global setup), install the tarball into a scratch host app in a temp folder —
 * offline, every dependency from the npm cache, better-sqlite3 compiled there — and:
 * - the host registers `fleetPlugin` behind its own auth, on the SQLite store, and
 *   submits and claims through `fleet/client` (every subpath of the `exports` map is
 *   imported);
 * - its TypeScript sees the package's types (a wrong stage is a type error);
 * - the installed `fleet` binary runs compiled JavaScript (no tsx anywhere): `fleet help`,
 *   and `fleet serve` + `fleet submit`.
 *
 * Offline: `npm ci --offline` needs a lockfile naming each tarball, so the host's
 * lockfile is this checkout's, minus development dependencies, with the registry URL of
 * each package (this checkout's `npm ci` put those in the cache).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  killEverything,
  ROOT,
  scratch,
  spawnTracked,
  WAIT_MS,
  withoutNpmSettings,
} from '../support/agent-harness.js';

afterAll(killEverything);

/** The environment of nested npm runs: none of the outer `npm test`'s own settings. */
const npmEnv = (): Record<string, string> => ({
  ...withoutNpmSettings(),
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
});

async function sh(
  command: string,
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<{ stdout: string; stderr: string }> {
  const p = spawnTracked(command, args, env, { cwd });
  const code = await p.exited;
  if (code !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${code})\n${p.stdout()}\n${p.stderr()}`);
  }
  return { stdout: p.stdout(), stderr: p.stderr() };
}

const HOST_SERVER = `
import Fastify from 'fastify';
import { Coordinator } from 'fleet';
import { createFleetClient } from 'fleet/client';
import { openCosmosStore } from 'fleet/cosmos';
import { fleetPlugin } from 'fleet/http';
import { jobMachine } from 'fleet/machines';
import { createMemoryStore } from 'fleet/memory';
import { openSqliteStore } from 'fleet/sqlite';

// The host's own auth: an API key header, not Fleet's bearer tokens.
const app = Fastify();
const store = openSqliteStore({ path: process.argv[2] });
await app.register(fleetPlugin, {
  store,
  authenticate: (request) =>
    request.headers['x-host-key'] === 'host-secret'
      ? { productId: 'host-product', roles: ['submitter', 'factory'] }
      : null,
});
await app.listen({ host: '127.0.0.1', port: 0 });
const baseUrl = 'http://127.0.0.1:' + app.server.address().port;
const client = createFleetClient({ baseUrl, headers: { 'x-host-key': 'host-secret' } });
const { job, outcome } = await client.submit({ idempotencyKey: 'host-1', bodyMd: '# from the host' });
const claim = await client.claim({ factoryId: 'host-factory' });
let refused = null;
try {
  await createFleetClient({ baseUrl }).listJobs();
} catch (e) {
  refused = e.status;
}
console.log(JSON.stringify({
  outcome,
  jobId: job.id,
  claimed: claim?.job.id,
  stage: claim?.job.stage,
  holder: claim?.job.holderFactoryId,
  refused,
  machine: jobMachine.id,
  exports: [typeof Coordinator, typeof openCosmosStore, typeof createMemoryStore],
  node: process.version,
}));
await app.close();
await store.close();
`;

const HOST_TYPES = `
import { Coordinator, type JobDoc } from 'fleet';
import { createFleetClient, FleetApiError, type Job } from 'fleet/client';
import { openCosmosStore } from 'fleet/cosmos';
import { type FleetPluginOptions, fleetPlugin } from 'fleet/http';
import { jobMachine } from 'fleet/machines';
import { createMemoryStore } from 'fleet/memory';
import { openSqliteStore } from 'fleet/sqlite';

const client = createFleetClient({ baseUrl: 'http://127.0.0.1:8080', token: 't' });
export const stage: Job['stage'] = 'queued';
// @ts-expect-error not a stage: the types are the package's, not any
export const wrong: Job['stage'] = 'nope';
export const options: FleetPluginOptions = { store: createMemoryStore(), authenticate: () => null };
export const doc: JobDoc['stage'] = 'shipped';
export const all = [Coordinator, FleetApiError, openCosmosStore, fleetPlugin, jobMachine, openSqliteStore];
export async function ttl(id: string): Promise<number> {
  return (await client.renewLease(id, { factoryId: 'f', leaseEpoch: 1 })).ttlMs;
}
`;

describe('the packed tarball in a host app', { timeout: 900_000 }, () => {
  it('installs offline, hosts fleetPlugin with its own auth, types check, and its fleet binary runs', async () => {
    const work = scratch('fleet-package-');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

    // dist/ is fresh (global setup); packing must not rebuild it under the other tests.
    const packed = await sh(
      'npm',
      ['pack', '--ignore-scripts', '--json', '--pack-destination', work],
      ROOT,
      npmEnv(),
    );
    const [info] = JSON.parse(packed.stdout) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>;
    const files = info!.files.map((f) => f.path);
    expect(files).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'bin/fleet.mjs',
        'dist/runtime/index.js',
        'dist/runtime/index.d.ts',
        'dist/adapters/client/index.js',
        'dist/adapters/cli/main.js',
      ]),
    );
    expect(
      files.filter(
        (f) =>
          !f.startsWith('dist/') && !['package.json', 'README.md', 'bin/fleet.mjs'].includes(f),
      ),
    ).toEqual([]);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.some((f) => f.includes('test/') || f.endsWith('.map'))).toBe(false);
    // every subpath of the exports map is in it
    for (const [subpath, target] of Object.entries(
      pkg.exports as Record<string, string | Record<string, string>>,
    )) {
      for (const file of typeof target === 'string' ? [target] : Object.values(target)) {
        expect(files, `${subpath} → ${file}`).toContain(file.replace(/^\.\//, ''));
      }
    }

    // The host app: its package.json and a lockfile for an offline install.
    const host = join(work, 'host');
    const tarball = readFileSync(join(work, info!.filename));
    const integrity = `sha512-${createHash('sha512').update(tarball).digest('base64')}`;
    const deps = { fleet: `file:../${info!.filename}`, fastify: pkg.dependencies.fastify };
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; version?: string; resolved?: string }>;
    };
    const packages: Record<string, unknown> = {
      '': { name: 'host-app', version: '1.0.0', dependencies: deps },
      'node_modules/fleet': {
        version: pkg.version,
        resolved: deps.fleet,
        integrity,
        dependencies: pkg.dependencies,
        bin: pkg.bin,
        engines: pkg.engines,
      },
    };
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path === '' || entry.dev) continue;
      const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
      packages[path] = {
        ...entry,
        resolved:
          entry.resolved ??
          `https://registry.npmjs.org/${name}/-/${name.split('/').pop()}-${entry.version}.tgz`,
      };
    }
    mkdirSync(host);
    const write = (file: string, text: string) => writeFileSync(join(host, file), text);
    write(
      'package.json',
      JSON.stringify(
        {
          name: 'host-app',
          version: '1.0.0',
          private: true,
          type: 'module',
          dependencies: deps,
          allowScripts: { 'better-sqlite3': true },
        },
        null,
        2,
      ),
    );
    write(
      'package-lock.json',
      JSON.stringify(
        { name: 'host-app', version: '1.0.0', lockfileVersion: 3, requires: true, packages },
        null,
        2,
      ),
    );
    write('server.mjs', HOST_SERVER);
    write('check.ts', HOST_TYPES);
    write(
      'tsconfig.json',
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules/@types')],
        },
        files: ['check.ts'],
      }),
    );

    await sh('npm', ['ci', '--offline', '--no-audit', '--no-fund'], host, npmEnv());
    const installed = join(host, 'node_modules');
    expect(existsSync(join(installed, 'better-sqlite3/build/Release/better_sqlite3.node'))).toBe(
      true,
    );
    expect(existsSync(join(installed, 'tsx'))).toBe(false);
    expect(existsSync(join(installed, 'typescript'))).toBe(false);
    const binText = readFileSync(join(installed, 'fleet/bin/fleet.mjs'), 'utf8');
    expect(binText).not.toMatch(/from ['"]tsx|import\(['"]tsx|\.ts['"]/);
    expect(readdirSync(join(installed, 'fleet'))).not.toContain('adapters');

    // The host registers the plugin behind its own auth, submits and claims.
    const ran = await sh(process.execPath, ['server.mjs', join(work, 'host.db')], host);
    const result = JSON.parse(ran.stdout.trim().split('\n').at(-1)!);
    expect(result).toMatchObject({
      outcome: 'created',
      stage: 'assigned',
      holder: 'host-factory',
      refused: 401,
      machine: 'job',
      exports: ['function', 'function', 'function'],
    });
    expect(result.claimed).toBe(result.jobId);
    expect(Number(/^v(\d+)/.exec(result.node)![1])).toBeGreaterThanOrEqual(20);

    // Its TypeScript sees the package's types.
    await sh(
      process.execPath,
      [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'],
      host,
    );

    // The installed binary: compiled JavaScript.
    const bin = join(installed, '.bin/fleet');
    const help = await sh(bin, ['help'], host);
    expect(help.stdout).toMatch(/^usage: fleet <command> \[options\]/);
    const server = spawnTracked(
      bin,
      ['serve'],
      {
        FLEET_STORE: 'memory',
        PORT: '0',
        HOST: '127.0.0.1',
        FLEET_TOKENS: JSON.stringify([{ token: 'pkg-token', productId: 'pkg', roles: ['admin'] }]),
        FLEET_LOG_LEVEL: 'warn',
      },
      { cwd: host },
    );
    const url = (
      await server.waitForLine(/^fleet listening on (\S+)$/, 'the installed fleet serve', WAIT_MS)
    )[1]!;
    const submitted = spawnTracked(
      bin,
      ['submit', '-', '--key', 'pkg-1', '--json'],
      { FLEET_URL: url, FLEET_TOKEN: 'pkg-token' },
      { cwd: host, stdin: '# installed\n' },
    );
    expect(await submitted.exited).toBe(0);
    expect(JSON.parse(submitted.stdout())).toMatchObject({
      outcome: 'created',
      job: { stage: 'queued', bodyMd: '# installed\n' },
    });
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });
});
