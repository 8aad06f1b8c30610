/**
 * End-to-end throughput on the memory store: `workers` factories drain a queue of
 * submitted jobs, each job going claim → building → review → testing → shipped through
 * `Coordinator.claimNextJob` and `Coordinator.transition` (no-op work), as in
 * DESIGN.md's comparison (32 concurrent workers, claim then complete). The goal there,
 * ≈ 18k jobs/s (3× BullMQ's 5.9k), is for durable stores; the memory store commits
 * nothing to disk, so this is the ceiling of the runtime path. Printed; never asserted.
 *
 *   npx tsx bench/e2e.bench.ts [--jobs=5000]
 */
import { parseArgs } from 'node:util';
import { createMemoryStore } from '../adapters/store/memory/index.js';
import { Coordinator } from '../runtime/coordinator.js';
import type { PatchTarget } from '../runtime/types.js';
import { isMain, relaunchWithGc } from './support/main.js';
import { profiled } from './support/profile.js';
import {
  collectGarbage,
  cpuSample,
  GcMeter,
  int,
  othersShare,
  quantile,
  say,
} from './support/report.js';
import { ALL_CAPABILITIES, JobFeed, TEN_SETS } from './support/workload.js';

export interface E2eBenchOptions {
  /** Jobs driven through to shipped. @defaultValue 5_000 */
  jobs: number;
  /** Concurrent factories. @defaultValue 32 */
  workers: number;
  /** Jobs of an untimed run first, on a separate store. @defaultValue 1_000 */
  warmup: number;
}

export const DEFAULT_E2E_OPTIONS: E2eBenchOptions = { jobs: 5_000, workers: 32, warmup: 1_000 };

export interface E2eResult {
  jobs: number;
  perSec: number;
  gcShare: number;
  /** Claim-to-shipped time of one job, ms. */
  p50Ms: number;
  p99Ms: number;
}

/** DESIGN.md: ≥ 3× BullMQ (5.9k jobs/s) on the same machine. */
export const E2E_GOAL = 18_000;
export const BULLMQ_RATE = 5_900;

const PRODUCT = 'bench-product';
const STAGES: readonly PatchTarget[] = ['building', 'review', 'testing', 'shipped'];

/** Submits `jobs`, then times `workers` factories shipping all of them. */
async function drive(
  jobs: number,
  workers: number,
  profileAs: string | null = null,
): Promise<{ start: number; end: number; shipped: number; latenciesMs: number[] }> {
  const store = createMemoryStore();
  const coord = new Coordinator({ store });
  try {
    const feed = new JobFeed(PRODUCT, TEN_SETS, jobs);
    for (let i = 0; i < jobs; i++) {
      const r = await coord.submit(PRODUCT, feed.nextInput());
      if (!r.ok) throw r.error;
    }
    const factories = Array.from({ length: workers }, (_, i) => `bench-factory-${i}`);
    for (const factoryId of factories) {
      const r = await coord.heartbeat(PRODUCT, {
        factoryId,
        capabilities: [...ALL_CAPABILITIES],
        health: 'ok',
      });
      if (!r.ok) throw r.error;
    }
    let shipped = 0;
    const latenciesMs: number[] = [];
    const worker = async (factoryId: string) => {
      for (;;) {
        const t0 = performance.now();
        const claim = await coord.claimNextJob(PRODUCT, { factoryId });
        if (!claim.ok) throw claim.error;
        if (claim.value === null) return;
        const { job, lease } = claim.value;
        for (const to of STAGES) {
          const r = await coord.transition(PRODUCT, job.id, {
            factoryId,
            leaseEpoch: lease.leaseEpoch,
            to,
          });
          if (!r.ok) throw r.error;
        }
        latenciesMs.push(performance.now() - t0);
        shipped++;
      }
    };
    const start = performance.now();
    const all = () => Promise.all(factories.map(worker));
    await (profileAs === null ? all() : profiled(profileAs, all));
    const end = performance.now();
    return { start, end, shipped, latenciesMs };
  } finally {
    await store.close();
  }
}

export async function runE2eBench(partial: Partial<E2eBenchOptions> = {}): Promise<E2eResult> {
  const options = { ...DEFAULT_E2E_OPTIONS, ...partial };
  say('== end-to-end: claim → building → review → testing → shipped on the memory store ==');
  say(
    `${int(options.jobs)} submitted jobs (untimed), ${options.workers} factories at once, ` +
      'no-op work; timed from the first claim to the last ship',
  );
  await drive(options.warmup, options.workers);
  collectGarbage();
  const meter = new GcMeter();
  meter.start();
  const cpuBefore = cpuSample();
  const { start, end, shipped, latenciesMs } = await drive(options.jobs, options.workers, 'e2e');
  const others = othersShare(cpuBefore, cpuSample());
  await meter.stop();
  if (shipped !== options.jobs) throw new Error(`shipped ${shipped} of ${options.jobs} jobs`);
  const ms = end - start;
  const result: E2eResult = {
    jobs: shipped,
    perSec: (shipped / ms) * 1000,
    gcShare: meter.within([[start, end]]).ms / ms,
    p50Ms: quantile(latenciesMs, 0.5),
    p99Ms: quantile(latenciesMs, 0.99),
  };
  say(
    `end-to-end: ${int(result.perSec)} jobs/s  (${int(result.perSec * 5)} coordinator calls/s: a claim and 4 moves per job; ` +
      `GC ${(result.gcShare * 100).toFixed(0)}%; claim→shipped p50 ${result.p50Ms.toFixed(1)} ms, ` +
      `p99 ${result.p99Ms.toFixed(1)} ms with ${options.workers} workers)`,
  );
  say(
    `  vs goal ≈ ${int(E2E_GOAL)}/s durable: ${(result.perSec / E2E_GOAL).toFixed(2)}×;` +
      `  vs BullMQ ${int(BULLMQ_RATE)}/s: ${(result.perSec / BULLMQ_RATE).toFixed(2)}×  (memory store: nothing is durable)` +
      (others === null ? '' : `  other processes ${(others * 100).toFixed(0)}%`),
  );
  return result;
}

export function e2eOptionsFromArgs(args: string[]): Partial<E2eBenchOptions> {
  const { values } = parseArgs({ args, options: { jobs: { type: 'string' } }, strict: false });
  const out: Partial<E2eBenchOptions> = {};
  if (typeof values.jobs === 'string') out.jobs = Number(values.jobs);
  return out;
}

if (isMain(import.meta.url)) {
  relaunchWithGc(import.meta.url);
  await runE2eBench(e2eOptionsFromArgs(process.argv.slice(2)));
}
