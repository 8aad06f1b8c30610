/**
 * The inspector's static files: the stylesheet, the page scripts and the icon from
 * `adapters/ui/assets/`, and the one browser library, `eventsource-parser`, served from
 * its npm package (installed with everything else: nothing is fetched at run time and
 * there is no build step). Read once, kept in memory with a content hash as ETag.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One served file. */
export interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  /** A strong ETag (quoted). */
  readonly etag: string;
}

const TYPES: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
};

let assets: Map<string, Asset> | undefined;

function asset(body: Buffer, name: string): Asset {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, contentType: TYPES[extname(name)] ?? 'application/octet-stream', etag };
}

/** Every asset by its path under `/inspector/assets/` (e.g. `job.js`, `vendor/eventsource-parser.js`). */
export function inspectorAssets(): ReadonlyMap<string, Asset> {
  if (assets) return assets;
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'assets');
  const map = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    if (TYPES[extname(name)] === undefined) continue;
    map.set(name, asset(readFileSync(join(dir, name)), name));
  }
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('eventsource-parser/package.json');
  map.set(
    'vendor/eventsource-parser.js',
    asset(readFileSync(join(dirname(pkg), 'dist', 'index.js')), 'index.js'),
  );
  assets = map;
  return map;
}
