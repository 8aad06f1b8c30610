/**
 * Submission throughput on the memory store: `Coordinator.submit` of new jobs (mixed
 * priorities, ten capability sets, no deps), from `concurrency` callers at once into
 * one product. DESIGN.md aims at ≈ 10k/s *durable*; the memory store is not durable,
 * so this is the ceiling the runtime itself allows. Printed; never asserted.
 *
 *   npx tsx bench/submit.bench.ts [--jobs=20000]
 */
import { parseArgs } from 'node:util';
import { createMemoryStore } from '../adapters/store/memory/index.js';
import { Coordinator } from '../runtime/coordinator.js';
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
}

/** The DESIGN.md goal (durable) this is printed against. */
export const SUBMIT_GOAL = 10_000;

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
  const result: SubmitResult = {
    jobs: options.jobs,
    perSec: (options.jobs / ms) * 1000,
    gcShare: gc.ms / ms,
  };
  say(
    `submit: ${int(result.perSec)} jobs/s  (${((ms / options.jobs) * 1000).toFixed(0)} µs each, ` +
      `GC ${(result.gcShare * 100).toFixed(0)}%)  vs goal ≈ ${int(SUBMIT_GOAL)}/s durable: ` +
      `${(result.perSec / SUBMIT_GOAL).toFixed(2)}×  (memory store: nothing is durable)` +
      (others === null ? '' : `  other processes ${(others * 100).toFixed(0)}%`),
  );
  return result;
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
