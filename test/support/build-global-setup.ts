/**
 * vitest global setup: compiles `dist/` once per test run (`tsc -p tsconfig.build.json`,
 * a few seconds), so every test that runs the `fleet` command runs the compiled
 * JavaScript an installed package runs — never a stale build, never tsx.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSC = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url));

/** Set once dist/ is built in this run (each vitest project calls the setup). */
const BUILT = 'VITEST_FLEET_DIST_BUILT';

export default function setup(): void {
  if (process.env[BUILT] === '1') return;
  const r = spawnSync(process.execPath, [TSC, '-p', 'tsconfig.build.json'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    throw new Error(`building dist/ failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  }
  process.env[BUILT] = '1';
}
