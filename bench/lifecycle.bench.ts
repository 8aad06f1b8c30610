/**
 * The write path against the store under it: Fleet's durable transitions/s beside the
 * raw better-sqlite3 ceiling for the same durable work, measured in the same run.
 *
 *   npx tsx bench/lifecycle.bench.ts [--jobs=N] [--depths=1000,200000] [--full] [--quick]
 *
 * 1. **The raw ceiling**: a SQLite file in WAL mode, `synchronous=FULL`, a `jobs` table
 *    of 2 KB JSON rows and an `events` table. One transition = read and parse a job row,
 *    stringify it, a conditional `UPDATE ... WHERE etag = ?`, an `INSERT` of an event;
 *    64 transitions per transaction (as Fleet's group commit shares one among its
 *    concurrent callers). Transitions/s.
 * 2. **The fsync time**: one small durable commit at a time (`synchronous=FULL`), the
 *    mean over 300: the bound of a lone factory, whose every transition waits for its
 *    own commit, is 1 / (5 × that) jobs/s.
 * 3. **Fleet, in process**: a `Coordinator` on the SQLite store (a file, FULL), a queue
 *    of jobs, then 32 factories (and then one) each looping claim → building → review →
 *    testing → shipped (5 fenced durable transitions per job, no-op work). Durable
 *    transitions/s = 5 × jobs/s. Repeated behind `--depths` queued jobs (default 1k and
 *    200k, and 1M with `--full` or `FLEET_BENCH_FULL=1`; the depth goal is each deep
 *    figure ≥ 0.9 × the shallow one). The queues are filled once per depth into a
 *    template file and copied per section (`support/sqlite-queue.ts`).
 *
 * Goals (issue 13), printed as ratios: 32 factories ≥ 0.50 × the ceiling; one factory ≥
 * 0.70 × 1/(5 × fsync); depth ≥ 0.90. Asserts nothing. `FLEET_BENCH_CPU_PROFILE=<dir>`
 * writes a CPU profile of each measured Fleet section.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../adapters/store/sqlite/index.js';
import { Coordinator } from '../runtime/index.js';
import type { PatchTarget } from '../runtime/types.js';
import { atLeast, type GoalRow } from './support/goals.js';
import { isMain, relaunchWithGc } from './support/main.js';
import { profiled } from './support/profile.js';
import { collectGarbage, count, int, say, table } from './support/report.js';
import { QUEUE_PRODUCT, QueueTemplates } from './support/sqlite-queue.js';
import { ALL_CAPABILITIES } from './support/workload.js';

const PRODUCT = QUEUE_PRODUCT;
const STAGES: readonly PatchTarget[] = ['building', 'review', 'testing', 'shipped'];
/** Goals of issue 13. */
export const CEILING_GOAL = 0.5;
export const FSYNC_GOAL = 0.7;
export const DEPTH_GOAL = 0.9;

export interface LifecycleOptions {
  /** Jobs driven to shipped by 32 factories (a tenth with one factory). */
  jobs: number;
  factories: number;
  /** Queue depths to measure behind. */
  depths: number[];
  /** Transitions of the raw ceiling loop. */
  ceilingTransitions: number;
  /** Fleet's durability: `FULL` (the goal's setting) or `NORMAL` (no fsync per commit: CPU only, for profiling). */
  synchronous: 'FULL' | 'NORMAL';
}

export const DEFAULT_LIFECYCLE: LifecycleOptions = {
  jobs: 20_000,
  factories: 32,
  depths: [1_000, 200_000],
  ceilingTransitions: 100_000,
  synchronous: 'FULL',
};

export interface LifecycleRow {
  depth: number;
  factories: number;
  jobs: number;
  jobsPerSec: number;
  transitionsPerSec: number;
  commits: number;
}

export interface LifecycleResult {
  ceilingPerSec: number;
  fsyncMs: number;
  rows: LifecycleRow[];
}

const tempDir = (): string => mkdtempSync(join(tmpdir(), 'fleet-lifecycle-'));

/** The raw better-sqlite3 loop: the same durable work as one Fleet transition. */
function rawCeiling(transitions: number): number {
  const dir = tempDir();
  try {
    const db = new Database(join(dir, 'raw.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(`CREATE TABLE jobs (pk TEXT NOT NULL, id TEXT NOT NULL, etag TEXT NOT NULL,
               stage TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY (pk, id));
             CREATE TABLE events (pk TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,
               json TEXT NOT NULL, PRIMARY KEY (pk, id))`);
    const jobsCount = 20_000;
    const pad = 'x'.repeat(1800);
    const insert = db.prepare('INSERT INTO jobs VALUES (?, ?, ?, ?, ?)');
    db.transaction(() => {
      for (let i = 0; i < jobsCount; i++) {
        const doc = { id: `j${i}`, productId: PRODUCT, stage: 'queued', seq: i, eventSeq: 0, pad };
        insert.run(PRODUCT, doc.id, 'e0', 'queued', JSON.stringify(doc));
      }
    })();
    const read = db.prepare('SELECT etag, json FROM jobs WHERE pk = ? AND id = ?').raw();
    const update = db.prepare(
      'UPDATE jobs SET etag = ?, stage = ?, json = ? WHERE pk = ? AND id = ? AND etag = ?',
    );
    const append = db.prepare('INSERT INTO events VALUES (?, ?, ?, ?)');
    const one = (i: number): void => {
      const id = `j${i % jobsCount}`;
      const [etag, json] = read.get(PRODUCT, id) as [string, string];
      const doc = JSON.parse(json) as { stage: string; eventSeq: number };
      doc.stage = doc.stage === 'queued' ? 'assigned' : 'queued';
      doc.eventSeq++;
      const next = randomBytes(6).toString('hex');
      const r = update.run(next, doc.stage, JSON.stringify(doc), PRODUCT, id, etag);
      if (r.changes !== 1) throw new Error('the ceiling loop lost its own etag');
      append.run(
        id,
        `${id}.e${doc.eventSeq}`,
        doc.eventSeq,
        JSON.stringify({ type: 'stage_changed', to: doc.stage, seq: doc.eventSeq }),
      );
    };
    const batch = db.transaction((from: number) => {
      for (let i = from; i < from + 64; i++) one(i);
    });
    for (let i = 0; i < 64 * 20; i += 64) batch(i); // warm-up
    const started = performance.now();
    for (let i = 0; i < transitions; i += 64) batch(i);
    const perSec = (transitions / (performance.now() - started)) * 1000;
    db.close();
    return perSec;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Mean time of one small durable commit (WAL, FULL), in ms. */
function fsyncTime(): number {
  const dir = tempDir();
  try {
    const db = new Database(join(dir, 'fsync.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
    const ins = db.prepare('INSERT INTO t (v) VALUES (?)');
    for (let i = 0; i < 30; i++) ins.run('warm');
    const n = 300;
    const started = performance.now();
    for (let i = 0; i < n; i++) ins.run(`row ${i}`); // autocommit: one fsync'd commit each
    const ms = (performance.now() - started) / n;
    db.close();
    return ms;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Jobs each Fleet section ships untimed first (statements, caches, JIT). */
export const LIFECYCLE_WARMUP = 200;

/**
 * `factories` concurrent factories ship `jobs` jobs (claim and 4 moves each) on a copy of
 * the queue of `depth` (so at least `depth` stay queued behind them), in process, on the
 * SQLite store with `synchronous`.
 */
export async function measureLifecycle(
  templates: QueueTemplates,
  depth: number,
  factories: number,
  jobs: number,
  label: string,
  synchronous: 'FULL' | 'NORMAL' = 'FULL',
): Promise<LifecycleRow> {
  const dir = tempDir();
  const path = await templates.copy(depth, jobs + LIFECYCLE_WARMUP, dir);
  const store = openSqliteStore({ path, synchronous });
  try {
    const coord = new Coordinator({ store, leaseMs: 600_000 });
    const caps = [...ALL_CAPABILITIES];
    for (let i = 0; i < LIFECYCLE_WARMUP; i++) await shipOne(coord, 'warm', caps);
    collectGarbage();
    const commitsBefore = store.commits;
    let shipped = 0;
    const started = performance.now();
    await profiled(label, () =>
      Promise.all(
        Array.from({ length: factories }, async (_, w) => {
          const factoryId = `f${w}`;
          while (shipped < jobs) {
            shipped++;
            await shipOne(coord, factoryId, caps);
          }
        }),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    await coord.drain();
    return {
      depth,
      factories,
      jobs,
      jobsPerSec: jobs / seconds,
      transitionsPerSec: (5 * jobs) / seconds,
      commits: store.commits - commitsBefore,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function shipOne(coord: Coordinator, factoryId: string, capabilities: string[]) {
  const claim = await coord.claimNextJob(PRODUCT, { factoryId, capabilities });
  if (!claim.ok) throw claim.error;
  if (claim.value === null) throw new Error('the queue ran dry: the bench is wrong');
  const { job, lease } = claim.value;
  for (const to of STAGES) {
    const r = await coord.transition(PRODUCT, job.id, {
      factoryId,
      leaseEpoch: lease.leaseEpoch,
      to,
    });
    if (!r.ok) throw r.error;
  }
}

export async function runLifecycleBench(
  partial: Partial<LifecycleOptions> = {},
  shared?: QueueTemplates,
): Promise<LifecycleResult> {
  const o = { ...DEFAULT_LIFECYCLE, ...partial };
  const templates = shared ?? new QueueTemplates(o.jobs + LIFECYCLE_WARMUP);
  say(
    `== lifecycle: claim → building → review → testing → shipped, in process, SQLite ${o.synchronous}, beside the raw better-sqlite3 ceiling (FULL) ==`,
  );
  const ceilingPerSec = rawCeiling(o.ceilingTransitions);
  const fsyncMs = fsyncTime();
  say(
    `raw ceiling: ${int(ceilingPerSec)} transitions/s (read+parse a 2 KB row, stringify, conditional UPDATE, INSERT an event; 64 per transaction, FULL)`,
  );
  say(
    `one durable commit: ${fsyncMs.toFixed(3)} ms → a lone factory's bound ${int(1000 / (5 * fsyncMs))} jobs/s`,
  );
  const rows: LifecycleRow[] = [];
  try {
    for (const depth of o.depths) {
      rows.push(
        await measureLifecycle(
          templates,
          depth,
          o.factories,
          o.jobs,
          `lifecycle-${depth}-${o.factories}`,
          o.synchronous,
        ),
      );
    }
    rows.push(
      await measureLifecycle(
        templates,
        o.depths[0] ?? 1000,
        1,
        Math.max(500, Math.round(o.jobs / 10)),
        'lifecycle-1',
        o.synchronous,
      ),
    );
  } finally {
    if (shared === undefined) templates.remove();
  }
  say(
    table(
      ['queued', 'factories', 'jobs', 'jobs/s', 'transitions/s', 'commits', 'vs ceiling'],
      rows.map((r) => [
        int(r.depth),
        String(r.factories),
        int(r.jobs),
        int(r.jobsPerSec),
        int(r.transitionsPerSec),
        int(r.commits),
        `${(r.transitionsPerSec / ceilingPerSec).toFixed(2)}×`,
      ]),
    ),
  );
  for (const line of lifecycleSummary({ ceilingPerSec, fsyncMs, rows })) say(line);
  return { ceilingPerSec, fsyncMs, rows };
}

export function lifecycleSummary(r: LifecycleResult): string[] {
  const many = r.rows.filter((x) => x.factories > 1);
  const shallow = many[0];
  const deep = many.at(-1);
  const lone = r.rows.find((x) => x.factories === 1);
  const out: string[] = [];
  if (shallow) {
    out.push(
      `lifecycle: ${int(shallow.transitionsPerSec)} durable transitions/s with ${shallow.factories} factories = ${(shallow.transitionsPerSec / r.ceilingPerSec).toFixed(2)}× the raw ceiling (goal ≥ ${CEILING_GOAL})`,
    );
  }
  if (lone) {
    const bound = 1000 / (5 * r.fsyncMs);
    out.push(
      `lifecycle: one factory ${int(lone.jobsPerSec)} jobs/s = ${(lone.jobsPerSec / bound).toFixed(2)}× its fsync bound of ${int(bound)} (goal ≥ ${FSYNC_GOAL})`,
    );
  }
  if (shallow && deep && deep !== shallow) {
    out.push(
      `lifecycle: behind ${int(deep.depth)} queued ${int(deep.transitionsPerSec)} transitions/s = ${(deep.transitionsPerSec / shallow.transitionsPerSec).toFixed(2)}× the figure at ${int(shallow.depth)} (goal ≥ ${DEPTH_GOAL})`,
    );
  }
  return out;
}

/** Goals 1, 3 and 6 (lifecycle figures) as summary rows. */
export function lifecycleGoals(r: LifecycleResult): GoalRow[] {
  const many = r.rows.filter((x) => x.factories > 1);
  const shallow = many[0];
  const lone = r.rows.find((x) => x.factories === 1);
  const out: GoalRow[] = [];
  if (shallow) {
    const share = shallow.transitionsPerSec / r.ceilingPerSec;
    out.push(
      atLeast(
        '1. lifecycle 32 factories / raw SQLite ceiling',
        `${share.toFixed(2)}× (${int(shallow.transitionsPerSec)} of ${int(r.ceilingPerSec)} transitions/s)`,
        share,
        CEILING_GOAL,
        `≥ ${CEILING_GOAL.toFixed(2)}×`,
      ),
    );
  }
  if (lone) {
    const bound = 1000 / (5 * r.fsyncMs);
    const share = lone.jobsPerSec / bound;
    out.push(
      atLeast(
        '3. lifecycle 1 factory / fsync bound',
        `${share.toFixed(2)}× (${int(lone.jobsPerSec)} of ${int(bound)} jobs/s)`,
        share,
        FSYNC_GOAL,
        `≥ ${FSYNC_GOAL.toFixed(2)}×`,
      ),
    );
  }
  if (shallow) {
    for (const deep of many.slice(1)) {
      const share = deep.transitionsPerSec / shallow.transitionsPerSec;
      out.push(
        atLeast(
          `6. depth: lifecycle at ${count(deep.depth)} / at ${count(shallow.depth)}`,
          `${share.toFixed(2)}× (${int(deep.transitionsPerSec)} vs ${int(shallow.transitionsPerSec)} transitions/s)`,
          share,
          DEPTH_GOAL,
          `≥ ${DEPTH_GOAL.toFixed(2)}×`,
        ),
      );
    }
  }
  return out;
}

/** True when the run asks for the 1M-deep figures (`--full` or `FLEET_BENCH_FULL=1`). */
export function wantsFull(args: readonly string[]): boolean {
  return args.includes('--full') || process.env.FLEET_BENCH_FULL === '1';
}

export function lifecycleOptionsFromArgs(args: string[]): Partial<LifecycleOptions> {
  const { values } = parseArgs({
    args,
    options: {
      jobs: { type: 'string' },
      depths: { type: 'string' },
      quick: { type: 'boolean' },
      synchronous: { type: 'string' },
      full: { type: 'boolean' },
    },
    strict: false,
  });
  const out: Partial<LifecycleOptions> = values.quick
    ? { jobs: 4_000, ceilingTransitions: 30_000 }
    : {};
  if (wantsFull(args)) out.depths = [1_000, 200_000, 1_000_000];
  if (typeof values.jobs === 'string') out.jobs = Number(values.jobs);
  if (typeof values.depths === 'string') out.depths = values.depths.split(',').map(Number);
  if (values.synchronous === 'NORMAL' || values.synchronous === 'FULL') {
    out.synchronous = values.synchronous;
  }
  return out;
}

if (isMain(import.meta.url)) {
  relaunchWithGc(import.meta.url);
  await runLifecycleBench(lifecycleOptionsFromArgs(process.argv.slice(2)));
}
