/**
 * The version of this Fleet build, from the package's own `package.json` (found next to
 * the running code: `adapters/cli/` in a checkout, `dist/adapters/cli/` when built).
 */
import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** `0.1.0`, or `unknown` when no package.json of `fleet` is found. */
export function fleetVersion(): string {
  if (cached !== undefined) return cached;
  cached = 'unknown';
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'fleet' && typeof pkg.version === 'string') {
        cached = pkg.version;
        break;
      }
    } catch {
      // not this level
    }
  }
  return cached;
}
