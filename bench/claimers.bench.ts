/**
 * Durable claims with many concurrent claimers, in process, on SQLite `FULL`.
 *
 *   npx tsx bench/claimers.bench.ts [--claims=N] [--claimers=64] [--depths=1000,200000] [--full] [--quick]
 *
 * A copy of a queue of `depth + headroom` queued jobs (ten capability sets, mixed
 * priorities, built as `submit` builds them: `support/sqlite-queue.ts`), a `Coordinator`
 * on it (`synchronous=FULL`: a claim is answered only after the commit that holds it),
 * then `claimers` concurrent loops, each a factory of its own holding every capability,
 * calling `claimNextJob` until `claims` claims have been answered (at least `depth`
 * jobs stay queued). Warm-up first. Reports durable claims/s, p50/p99 latency and the
 * store's commits (group commit: many claims per fsync).
 *
 * Goals (issue 13), printed as ratios: 64 claimers ≥ 10,000 durable claims/s (goal 5);
 * the figure behind 200,000 (1,000,000 with `--full` or `FLEET_BENCH_FULL=1`) queued ≥
 * 0.9 × the figure at 1,000 (goal 6). Asserts nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openSqliteStore } from '../adapters/store/sqlite/index.js';
import { Coordinator } from '../runtime/index.js';
import { wantsFull } from './lifecycle.bench.js';
import { atLeast, type GoalRow } from './support/goals.js';
import { isMain, relaunchWithGc } from './support/main.js';
import { profiled } from './support/profile.js';
import { collectGarbage, count, int, quantile, say, table } from './support/report.js';
import { QUEUE_PRODUCT, QueueTemplates } from './support/sqlite-queue.js';
import { ALL_CAPABILITIES } from './support/workload.js';

/** Goal 5: durable claims/s with 64 claimers. */
export const CLAIMERS_GOAL = 10_000;
const DEPTH_GOAL = 0.9;

export interface ClaimersOptions {
  claimers: number;
  /** Timed claims per depth. */
  claims: number;
  /** Untimed claims first. */
  warmup: number;
  depths: number[];
}

export const DEFAULT_CLAIMERS: ClaimersOptions = {
  claimers: 64,
  claims: 20_000,
  warmup: 1_000,
  depths: [1_000, 200_000],
};

export interface ClaimersRow {
  depth: number;
  claimers: number;
  claims: number;
  claimsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  commits: number;
}

/** One depth: `claimers` loops of `claimNextJob` on a fresh copy of its queue. */
export async function measureClaimers(
  templates: QueueTemplates,
  depth: number,
  o: ClaimersOptions,
): Promise<ClaimersRow> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-claimers-'));
  const path = await templates.copy(depth, o.claims + o.warmup, dir);
  const store = openSqliteStore({ path, synchronous: 'FULL' });
  try {
    const coord = new Coordinator({ store, leaseMs: 600_000 });
    const capabilities = [...ALL_CAPABILITIES];
    const loop = async (factoryId: string, until: () => boolean, latencies?: number[]) => {
      while (until()) {
        const t0 = performance.now();
        const r = await coord.claimNextJob(QUEUE_PRODUCT, { factoryId, capabilities });
        if (!r.ok) throw r.error;
        if (r.value === null) throw new Error('the queue ran dry: the bench is wrong');
        latencies?.push(performance.now() - t0);
      }
    };
    let warm = 0;
    await Promise.all(
      Array.from({ length: o.claimers }, (_, c) => loop(`warm${c}`, () => warm++ < o.warmup)),
    );
    collectGarbage();
    const commitsBefore = store.commits;
    const latencies: number[] = [];
    let issued = 0;
    const started = performance.now();
    await profiled(`claimers-${depth}-${o.claimers}`, () =>
      Promise.all(
        Array.from({ length: o.claimers }, (_, c) =>
          loop(`f${c}`, () => issued++ < o.claims, latencies),
        ),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    await coord.drain();
    return {
      depth,
      claimers: o.claimers,
      claims: o.claims,
      claimsPerSec: o.claims / seconds,
      p50Ms: quantile(latencies, 0.5),
      p99Ms: quantile(latencies, 0.99),
      commits: store.commits - commitsBefore,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runClaimersBench(
  partial: Partial<ClaimersOptions> = {},
  shared?: QueueTemplates,
): Promise<ClaimersRow[]> {
  const o = { ...DEFAULT_CLAIMERS, ...partial };
  const templates = shared ?? new QueueTemplates(o.claims + o.warmup);
  say(
    `== claimers: ${o.claimers} concurrent claimers in process, SQLite FULL (durable claims), behind ${o.depths.map(count).join(' / ')} queued ==`,
  );
  const rows: ClaimersRow[] = [];
  try {
    for (const depth of o.depths) rows.push(await measureClaimers(templates, depth, o));
  } finally {
    if (shared === undefined) templates.remove();
  }
  say(
    table(
      ['queued', 'claimers', 'claims', 'claims/s', 'p50 ms', 'p99 ms', 'commits', 'vs goal'],
      rows.map((r) => [
        int(r.depth),
        String(r.claimers),
        int(r.claims),
        int(r.claimsPerSec),
        r.p50Ms.toFixed(2),
        r.p99Ms.toFixed(2),
        int(r.commits),
        `${(r.claimsPerSec / CLAIMERS_GOAL).toFixed(2)}×`,
      ]),
    ),
  );
  for (const g of claimersGoals(rows)) say(`${g.goal}: ${g.measured} (goal ${g.target})`);
  return rows;
}

/** Goal 5 (the shallowest depth) and goal 6 (each deeper one against it). */
export function claimersGoals(rows: readonly ClaimersRow[]): GoalRow[] {
  const shallow = rows[0];
  if (shallow === undefined) return [];
  const out = [
    atLeast(
      `5. ${shallow.claimers} claimers, durable claims/s`,
      `${int(shallow.claimsPerSec)}/s (p99 ${shallow.p99Ms.toFixed(1)} ms)`,
      shallow.claimsPerSec,
      CLAIMERS_GOAL,
      `≥ ${int(CLAIMERS_GOAL)}/s`,
    ),
  ];
  for (const deep of rows.slice(1)) {
    const share = deep.claimsPerSec / shallow.claimsPerSec;
    out.push(
      atLeast(
        `6. depth: claims at ${count(deep.depth)} / at ${count(shallow.depth)}`,
        `${share.toFixed(2)}× (${int(deep.claimsPerSec)} vs ${int(shallow.claimsPerSec)}/s)`,
        share,
        DEPTH_GOAL,
        `≥ ${DEPTH_GOAL.toFixed(2)}×`,
      ),
    );
  }
  return out;
}

export function claimersOptionsFromArgs(args: string[]): Partial<ClaimersOptions> {
  const { values } = parseArgs({
    args,
    options: {
      claims: { type: 'string' },
      claimers: { type: 'string' },
      depths: { type: 'string' },
      quick: { type: 'boolean' },
      full: { type: 'boolean' },
    },
    strict: false,
  });
  const out: Partial<ClaimersOptions> = values.quick ? { claims: 5_000, warmup: 500 } : {};
  if (wantsFull(args)) out.depths = [1_000, 200_000, 1_000_000];
  if (typeof values.claims === 'string') out.claims = Number(values.claims);
  if (typeof values.claimers === 'string') out.claimers = Number(values.claimers);
  if (typeof values.depths === 'string') out.depths = values.depths.split(',').map(Number);
  return out;
}

if (isMain(import.meta.url)) {
  relaunchWithGc(import.meta.url);
  await runClaimersBench(claimersOptionsFromArgs(process.argv.slice(2)));
}
