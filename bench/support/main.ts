/**
 * Entry-point helpers: "is this module the script node was started with?", and a
 * relaunch with `--expose-gc --max-semi-space-size=64` (so heap figures are taken after a full GC and the
 * collector can be settled between configurations) when it was started without.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gcExposed } from './report.js';

/** True when the module at `metaUrl` is the script node was started with. */
export const isMain = (metaUrl: string): boolean =>
  process.argv[1] !== undefined && metaUrl === pathToFileURL(process.argv[1]).href;

const CHILD_ENV = 'FLEET_BENCH_CHILD';

/**
 * When GC is not exposed, runs the script at `metaUrl` again in a child node with
 * `--expose-gc --import tsx` and the same arguments, then exits with its status.
 * Returns (false) when no relaunch was needed or possible.
 */
export function relaunchWithGc(metaUrl: string): false {
  if (gcExposed() || process.env[CHILD_ENV] === '1') return false;
  const child = spawnSync(
    process.execPath,
    [
      '--expose-gc',
      '--max-old-space-size=6144',
      // A 1M-job in-memory queue is a 2 GB heap: larger young generations mean fewer
      // scavenges over it (measured: 1M/1k claim ratio 0.58–0.71 → 0.8–0.9). The same
      // flag is what we recommend for servers running the memory store.
      '--max-semi-space-size=64',
      '--import',
      import.meta.resolve('tsx'),
      fileURLToPath(metaUrl),
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit', env: { ...process.env, [CHILD_ENV]: '1' } },
  );
  if (child.error) throw child.error;
  process.exit(child.status ?? 1);
}
