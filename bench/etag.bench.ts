/**
 * What an etag costs on the write path (issue 10, item 19): the counter the memory and
 * SQLite stores used to hand out, against unguessable alternatives — the pooled random
 * etags they use now (`adapters/store/shared/etag.ts`), a `randomBytes` call per write,
 * and a keyed hash (HMAC-SHA256) of a counter. Printed in ns per etag; never asserted.
 *
 *   npx tsx bench/etag.bench.ts [--count=2000000]
 */
import { createHmac, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { RandomEtags } from '../adapters/store/shared/etag.js';
import { isMain } from './support/main.js';
import { say } from './support/report.js';

export interface EtagResult {
  name: string;
  nsPerEtag: number;
}

/** ns per call of `make`, best of three runs of `count` calls (after a warm-up run). */
function time(make: () => string, count: number): number {
  let sink = 0;
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 4; round++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < count; i++) sink += make().length;
    const ns = Number(process.hrtime.bigint() - started) / count;
    if (round > 0) best = Math.min(best, ns);
  }
  if (sink === 0) throw new Error('unreachable: etags are never empty');
  return best;
}

export function runEtagBench(options: { count?: number } = {}): EtagResult[] {
  const count = options.count ?? 2_000_000;
  let n = 0;
  const prefix = `"s${randomBytes(6).toString('hex')}.`;
  const pooled = new RandomEtags('s');
  const key = randomBytes(32);
  const cases: [string, () => string][] = [
    ['counter (memory store before)', () => `"m${(++n).toString(36)}"`],
    ['prefix + counter (SQLite store before)', () => `${prefix}${(++n).toString(36)}"`],
    ['pooled random, 96 bits (now)', () => pooled.next()],
    ['randomBytes(12) per write', () => `"s${randomBytes(12).toString('base64url')}"`],
    [
      'HMAC-SHA256(key, counter), 96 bits',
      () =>
        `"s${createHmac('sha256', key).update(String(++n)).digest().toString('base64url', 0, 12)}"`,
    ],
  ];
  const results = cases.map(([name, make]) => ({ name, nsPerEtag: time(make, count) }));
  say(`== etags: ns per etag, best of 3 × ${count.toLocaleString('en-US')} ==`);
  const base = results[0]!.nsPerEtag;
  for (const r of results) {
    say(
      `${r.name.padEnd(40)} ${r.nsPerEtag.toFixed(0).padStart(6)} ns  (${(r.nsPerEtag / base).toFixed(1)}× the counter)`,
    );
  }
  return results;
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { count: { type: 'string' } }, strict: false });
  runEtagBench(values.count === undefined ? {} : { count: Number(values.count) });
}
