/**
 * CPU profiles of measured sections, on request: with `FLEET_BENCH_CPU_PROFILE=<dir>`
 * set, `profiled(name, fn)` records a V8 CPU profile of `fn` into
 * `<dir>/<name>.cpuprofile` (open it in Chrome DevTools, or summarise it with
 * `npx tsx bench/profile-summary.ts <file>`). Without it, `fn` just runs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';

/** The directory profiles go to, or null when profiling is off. */
export const profileDir = (): string | null => process.env.FLEET_BENCH_CPU_PROFILE || null;

export async function profiled<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const dir = profileDir();
  if (dir === null) return fn();
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
    const result = await fn();
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${name.replace(/[^A-Za-z0-9._-]+/g, '-')}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    process.stdout.write(`  (CPU profile: ${file})\n`);
    return result;
  } finally {
    session.disconnect();
  }
}
