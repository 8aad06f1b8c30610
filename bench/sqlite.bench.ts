/**
 * Durable claims on the embedded SQLite store: claims/s through `Coordinator.claimNextJob`
 * at 1k, 100k and 1M queued jobs, with `synchronous=FULL` and `NORMAL`, one claimer
 * (every claim waits for its own commit) against 64 concurrent claimers (group commit:
 * the claims that arrive while a commit is in flight share the next one).
 *
 *   npx tsx bench/sqlite.bench.ts [--sizes=1000,100000,1000000] [--claims=N]
 *
 * Goals (issue 3): 64 claimers on FULL ≥ 10,000 durable claims/s (one at a time, one
 * fsync each, measured ≈ 2,400/s); the 1M-queue figure within 20% of the 1k one.
 * Prints figures; asserts nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openSqliteStore } from '../adapters/store/sqlite/index.js';
import { Coordinator } from '../runtime/index.js';
import { isMain, relaunchWithGc } from './support/main.js';
import { int, say, table } from './support/report.js';
import { ALL_CAPABILITIES, JobFeed, ONE_SET } from './support/workload.js';

const PRODUCT = 'bench';
const CLAIM_GOAL = 10_000;

export interface SqliteRow {
  queued: number;
  synchronous: 'FULL' | 'NORMAL';
  claimers: number;
  claims: number;
  perSec: number;
  commits: number;
}

export interface SqliteBenchOptions {
  sizes: number[];
  /** Claims measured per configuration with 64 claimers (a tenth of it with one). */
  claims: number;
}

async function measure(
  path: string,
  synchronous: 'FULL' | 'NORMAL',
  claimers: number,
  claims: number,
  feed: JobFeed,
  queued: number,
): Promise<SqliteRow> {
  const store = openSqliteStore({ path, synchronous });
  const coord = new Coordinator({ store, leaseMs: 600_000 });
  try {
    // Warm up statements and caches.
    for (let i = 0; i < 50; i++) {
      await coord.claimNextJob(PRODUCT, { factoryId: 'warm', capabilities: [...ALL_CAPABILITIES] });
    }
    const commitsBefore = store.commits;
    let handed = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: claimers }, async (_, w) => {
        while (handed < claims) {
          handed++;
          const r = await coord.claimNextJob(PRODUCT, {
            factoryId: `f${w}`,
            capabilities: [...ALL_CAPABILITIES],
          });
          if (!r.ok || !r.value) throw new Error('the queue ran dry: the bench is wrong');
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const row = {
      queued,
      synchronous,
      claimers,
      claims,
      perSec: claims / seconds,
      commits: store.commits - commitsBefore,
    };
    // Top the queue back up (untimed) so the next configuration sees the same depth.
    await feed.fill(store, claims + 50);
    return row;
  } finally {
    await store.close();
  }
}

export async function runSqliteBench(
  options: Partial<SqliteBenchOptions> = {},
): Promise<SqliteRow[]> {
  const sizes = options.sizes ?? [1_000, 100_000, 1_000_000];
  const claims = options.claims ?? 10_000;
  say('== sqlite: durable claims through Coordinator.claimNextJob (WAL, group commit) ==');
  say(
    `${int(claims)} claims with 64 claimers, ${int(claims / 10)} with one; queue topped up between runs`,
  );
  const rows: SqliteRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bench-sqlite-'));
  try {
    for (const size of sizes) {
      const path = join(dir, `q${size}.db`);
      const feed = new JobFeed(PRODUCT, ONE_SET, size);
      const fillStarted = performance.now();
      const store = openSqliteStore({ path, synchronous: 'NORMAL' });
      await feed.fill(store, size + claims + 100);
      await store.close();
      say(
        `filled ${int(size)} queued jobs in ${((performance.now() - fillStarted) / 1000).toFixed(1)} s`,
      );
      for (const synchronous of ['FULL', 'NORMAL'] as const) {
        for (const claimers of [1, 64]) {
          const n = claimers === 1 ? Math.max(200, Math.floor(claims / 10)) : claims;
          const row = await measure(path, synchronous, claimers, n, feed, size);
          rows.push(row);
          say(
            `${int(size).padStart(9)} queued  ${synchronous.padEnd(6)} ${String(claimers).padStart(2)} claimer(s): ` +
              `${int(row.perSec)} claims/s  (${(row.claims / Math.max(1, row.commits)).toFixed(1)} claims per commit)`,
          );
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  say();
  say(
    table(
      ['queued', 'sync', 'claimers', 'claims/s', 'claims/commit', 'vs 1k'],
      rows.map((r) => {
        const base = rows.find(
          (b) =>
            b.queued === Math.min(...sizes) &&
            b.synchronous === r.synchronous &&
            b.claimers === r.claimers,
        );
        return [
          int(r.queued),
          r.synchronous,
          String(r.claimers),
          int(r.perSec),
          (r.claims / Math.max(1, r.commits)).toFixed(1),
          base ? (r.perSec / base.perSec).toFixed(2) : '-',
        ];
      }),
    ),
  );
  for (const line of sqliteSummary(rows, sizes)) say(line);
  return rows;
}

/** The goal lines: group commit vs one at a time, and depth independence. */
export function sqliteSummary(rows: readonly SqliteRow[], sizes: readonly number[]): string[] {
  const out: string[] = [];
  const min = Math.min(...sizes);
  const max = Math.max(...sizes);
  for (const synchronous of ['FULL', 'NORMAL'] as const) {
    const one = rows.find(
      (r) => r.queued === min && r.synchronous === synchronous && r.claimers === 1,
    );
    const many = rows.find(
      (r) => r.queued === min && r.synchronous === synchronous && r.claimers === 64,
    );
    const deep = rows.find(
      (r) => r.queued === max && r.synchronous === synchronous && r.claimers === 64,
    );
    if (one && many) {
      out.push(
        `sqlite ${synchronous}: 64 claimers ${int(many.perSec)} claims/s = ${(many.perSec / one.perSec).toFixed(1)}× one claimer` +
          (synchronous === 'FULL'
            ? `; ${(many.perSec / CLAIM_GOAL).toFixed(2)}× the 10k/s goal`
            : ''),
      );
    }
    if (many && deep && max !== min) {
      out.push(
        `sqlite ${synchronous}: ${int(max)}/${int(min)} queued = ${(deep.perSec / many.perSec).toFixed(2)} (goal ≥ 0.8)`,
      );
    }
  }
  return out;
}

export function sqliteOptionsFromArgs(args: string[]): Partial<SqliteBenchOptions> {
  const { values } = parseArgs({
    args,
    options: { sizes: { type: 'string' }, claims: { type: 'string' }, quick: { type: 'boolean' } },
    strict: false,
  });
  const out: Partial<SqliteBenchOptions> = {};
  if (values.quick === true) {
    out.sizes = [1_000, 100_000];
    out.claims = 4_000;
  }
  if (typeof values.sizes === 'string') out.sizes = values.sizes.split(',').map(Number);
  if (typeof values.claims === 'string') out.claims = Number(values.claims);
  return out;
}

if (isMain(import.meta.url)) {
  relaunchWithGc(import.meta.url);
  await runSqliteBench(sqliteOptionsFromArgs(process.argv.slice(2)));
}
