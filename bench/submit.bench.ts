/**
 * Submission throughput, in process (mixed priorities, ten capability sets, no deps,
 * one product). Printed; never asserted.
 * - `Coordinator.submit` on the memory store from `concurrency` callers at once: the
 *   ceiling the runtime itself allows (nothing is durable).
 * - Durable, on SQLite `FULL` (issue 13, goal 4): one caller submitting one job at a
 *   time (each waits for its own commit) against 1,600/s, the fsynced peer's
 *   one-at-a-time add; and `Coordinator.submitMany`, 1,000 jobs per call from one
 *   caller, against 10,000/s.
 *
 *   npx tsx bench/submit.bench.ts [--jobs=20000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createMemoryStore } from '../adapters/store/memory/index.js';
import { openSqliteStore } from '../adapters/store/sqlite/index.js';
import { Coordinator } from '../runtime/coordinator.js';
import type { SubmitInput } from '../runtime/types.js';
import { isMain, relaunchWithGc } from './support/main.js';
import { profiled } from './support/profile.js';
import { collectGarbage, cpuSample, GcMeter, int, othersShare, say } from './support/report.js';
import { JobFeed, TEN_SETS } from './support/workload.js';

export interface SubmitBenchOptions {
  /** Submissions timed. @defaultValue 20_000 */
  jobs: number;
  /** Submissions in flight at once. @defaultValue 32 */
  concurrency: number;
  /** Untimed submissions first, on a separate store. @defaultValue 2_000 */
  warmup: number;
}

export const DEFAULT_SUBMIT_OPTIONS: SubmitBenchOptions = {
  jobs: 20_000,
  concurrency: 32,
  warmup: 2_000,
};

export interface SubmitResult {
  jobs: number;
  perSec: number;
  gcShare: number;
  /** One caller, one job at a time, SQLite FULL: jobs/s. */
  oneAtATimePerSec: number;
  /** `submitMany` of {@link BULK_BATCH} per call, SQLite FULL: jobs/s. */
  bulkPerSec: number;
}

/** The DESIGN.md goal (durable) this is printed against. */
export const SUBMIT_GOAL = 10_000;
/** Issue 13, goal 4: bulk submission, durable, in process. */
export const BULK_SUBMIT_GOAL = 10_000;
/** Issue 13, goal 4: one-at-a-time submission, durable, in process (the fsynced peer's add). */
export const ONE_AT_A_TIME_GOAL = 1_600;
/** Jobs per `submitMany` call. */
export const BULK_BATCH = 1_000;

const PRODUCT = 'bench-product';

/** Submits `jobs` new jobs with `concurrency` callers; returns when the timed part ran. */
async function submitMany(
  jobs: number,
  concurrency: number,
  profileAs: string | null = null,
): Promise<{ start: number; end: number }> {
  const store = createMemoryStore();
  const coord = new Coordinator({ store });
  const feed = new JobFeed(PRODUCT, TEN_SETS, jobs);
  const inputs = Array.from({ length: jobs }, () => feed.nextInput());
  let next = 0;
  const caller = async () => {
    while (next < inputs.length) {
      const input = inputs[next++]!;
      const r = await coord.submit(PRODUCT, input);
      if (!r.ok) throw r.error;
      if (r.value.outcome !== 'created') throw new Error(`submission was ${r.value.outcome}`);
    }
  };
  try {
    const start = performance.now();
    const all = () => Promise.all(Array.from({ length: concurrency }, caller));
    await (profileAs === null ? all() : profiled(profileAs, all));
    return { start, end: performance.now() };
  } finally {
    await store.close();
  }
}

/**
 * Durable submission on a fresh SQLite store (FULL): `jobs` new jobs, one at a time
 * from one caller (`batch` 1: `submit`) or `batch` per `submitMany` call. Returns jobs/s.
 */
async function durableSubmit(jobs: number, batch: number, profileAs: string | null = null) {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-submit-'));
  const store = openSqliteStore({ path: join(dir, 'fleet.db'), synchronous: 'FULL' });
  const coord = new Coordinator({ store });
  const feed = new JobFeed(PRODUCT, TEN_SETS, jobs);
  const inputs: SubmitInput[] = Array.from({ length: jobs }, () => feed.nextInput());
  const run = async () => {
    if (batch === 1) {
      for (const input of inputs) {
        const r = await coord.submit(PRODUCT, input);
        if (!r.ok) throw r.error;
        if (r.value.outcome !== 'created') throw new Error(`submission was ${r.value.outcome}`);
      }
      return;
    }
    for (let i = 0; i < inputs.length; i += batch) {
      const r = await coord.submitMany(PRODUCT, inputs.slice(i, i + batch));
      if (!r.ok) throw r.error;
      for (const item of r.value) {
        if (!item.ok) throw item.error;
        if (item.value.outcome !== 'created') throw new Error(`item was ${item.value.outcome}`);
      }
    }
  };
  try {
    const commits = store.commits;
    const cpu = process.cpuUsage();
    const start = performance.now();
    await (profileAs === null ? run() : profiled(profileAs, run));
    const ms = performance.now() - start;
    const used = process.cpuUsage(cpu);
    return {
      perSec: (jobs / ms) * 1000,
      commits: store.commits - commits,
      // This process's CPU per job (user + system): what a loaded machine inflates least.
      cpuUsPerJob: (used.user + used.system) / jobs,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runSubmitBench(
  partial: Partial<SubmitBenchOptions> = {},
): Promise<SubmitResult> {
  const options = { ...DEFAULT_SUBMIT_OPTIONS, ...partial };
  say('== submit: Coordinator.submit on the memory store ==');
  say(
    `${int(options.jobs)} new jobs, ${options.concurrency} callers at once, one product, ` +
      'mixed priorities, 10 capability sets, no deps',
  );
  await submitMany(options.warmup, options.concurrency);
  collectGarbage();
  const meter = new GcMeter();
  meter.start();
  const cpuBefore = cpuSample();
  const { start, end } = await submitMany(options.jobs, options.concurrency, 'submit');
  const others = othersShare(cpuBefore, cpuSample());
  await meter.stop();
  const ms = end - start;
  const gc = meter.within([[start, end]]);
  const perSec = (options.jobs / ms) * 1000;
  const gcShare = gc.ms / ms;
  say(
    `submit: ${int(perSec)} jobs/s  (${((ms / options.jobs) * 1000).toFixed(0)} µs each, ` +
      `GC ${(gcShare * 100).toFixed(0)}%)  vs goal ≈ ${int(SUBMIT_GOAL)}/s durable: ` +
      `${(perSec / SUBMIT_GOAL).toFixed(2)}×  (memory store: nothing is durable)` +
      (others === null ? '' : `  other processes ${(others * 100).toFixed(0)}%`),
  );

  say();
  say('== submit, durable: SQLite FULL, in process, one caller ==');
  const oneJobs = Math.min(options.jobs, 5_000);
  await durableSubmit(Math.min(options.warmup, 500), 1);
  const one = await durableSubmit(oneJobs, 1, 'submit-one-at-a-time');
  say(
    `one at a time (submit): ${int(one.perSec)} jobs/s, ${int(one.commits)} commits for ${int(oneJobs)} jobs` +
      `  vs goal ${int(ONE_AT_A_TIME_GOAL)}/s: ${(one.perSec / ONE_AT_A_TIME_GOAL).toFixed(2)}×` +
      `  (CPU ${one.cpuUsPerJob.toFixed(0)} µs a job)`,
  );
  await durableSubmit(Math.max(options.warmup, BULK_BATCH), BULK_BATCH);
  collectGarbage();
  const bulk = await durableSubmit(options.jobs, BULK_BATCH, 'submit-many');
  say(
    `bulk (submitMany, ${int(BULK_BATCH)} per call): ${int(bulk.perSec)} jobs/s, ` +
      `${int(bulk.commits)} commits for ${int(options.jobs)} jobs` +
      `  vs goal ${int(BULK_SUBMIT_GOAL)}/s: ${(bulk.perSec / BULK_SUBMIT_GOAL).toFixed(2)}×` +
      `  (CPU ${bulk.cpuUsPerJob.toFixed(0)} µs a job: ${int(1e6 / bulk.cpuUsPerJob)}/s on a core of its own, fsync waits aside)`,
  );
  return {
    jobs: options.jobs,
    perSec,
    gcShare,
    oneAtATimePerSec: one.perSec,
    bulkPerSec: bulk.perSec,
  };
}

export function submitOptionsFromArgs(args: string[]): Partial<SubmitBenchOptions> {
  const { values } = parseArgs({ args, options: { jobs: { type: 'string' } }, strict: false });
  const out: Partial<SubmitBenchOptions> = {};
  if (typeof values.jobs === 'string') out.jobs = Number(values.jobs);
  return out;
}

if (isMain(import.meta.url)) {
  relaunchWithGc(import.meta.url);
  await runSubmitBench(submitOptionsFromArgs(process.argv.slice(2)));
}
