/**
 * fast-check glue shared by `sim.test.ts` and `run.ts`: one seed is one fast-check run
 * (`fc.check` with that seed and `numRuns: 1`) of a generated schedule; a schedule that
 * breaks an invariant is shrunk by fast-check to a minimal one, which `traceSchedule`
 * replays step by step.
 */
import fc from 'fast-check';
import { type Cmd, opOf, type Schedule, scheduleArb } from './schedule.js';
import { type SimOptions, type SimResult, type SimStats, simulate } from './simulator.js';

export interface SeedOptions extends SimOptions {
  /** Scheduler choices per schedule. */
  steps: number;
}

export interface SeedOutcome {
  seed: number;
  /** Stats of the generated (unshrunk) run. */
  stats: SimStats;
  violations: string[];
  /** On a failure: the shrunk schedule, its violations and how many shrinks it took. */
  failure?: {
    schedule: Schedule;
    result: SimResult;
    numShrinks: number;
    original: SimResult;
  };
}

export async function runSeed(seed: number, options: SeedOptions): Promise<SeedOutcome> {
  let first: SimResult | null = null;
  let lastFailing: { schedule: Schedule; result: SimResult } | null = null;
  const property = fc.asyncProperty(scheduleArb(options.steps), async (schedule) => {
    const result = await simulate(schedule, options);
    first ??= result;
    if (result.violations.length > 0) {
      lastFailing = { schedule, result };
      return false;
    }
    return true;
  });
  const details = await fc.check(property, { seed, numRuns: 1 });
  const original = first as SimResult | null;
  if (!original) throw new Error(`seed ${seed}: the property never ran`);
  if (!details.failed) return { seed, stats: original.stats, violations: [] };
  const shrunk = lastFailing as { schedule: Schedule; result: SimResult } | null;
  if (!shrunk) {
    // The property threw rather than returned false: report what fast-check saw.
    return {
      seed,
      stats: original.stats,
      violations: [`the property failed: ${String(details.errorInstance ?? 'unknown error')}`],
    };
  }
  return {
    seed,
    stats: original.stats,
    violations: original.violations,
    failure: {
      schedule: shrunk.schedule,
      result: shrunk.result,
      numShrinks: details.numShrinks,
      original,
    },
  };
}

/** A schedule as readable choices (`op(a,b,c)`), for reports. */
export function formatSchedule(schedule: Schedule): string {
  const cmds = schedule.cmds.map((c: Cmd, i) => `  ${i}: ${opOf(c)}(${c[1]},${c[2]},${c[3]})`);
  return [`rngSeed ${schedule.rngSeed}, ${schedule.cmds.length} step(s):`, ...cmds].join('\n');
}

/** Replays a schedule and returns what happened at each step, then its violations. */
export async function traceSchedule(schedule: Schedule, options: SimOptions): Promise<string[]> {
  const lines: string[] = [];
  const result = await simulate(schedule, { ...options, trace: (l) => lines.push(l) });
  return [...lines, ...result.violations.map((v) => `VIOLATION ${v}`)];
}

/** Adds `b` into `a` (counts of every field). */
export function addStats(a: SimStats, b: SimStats): void {
  for (const key of Object.keys(b) as Array<keyof SimStats>) {
    const x = b[key];
    if (typeof x === 'number') (a[key] as number) += x;
    else {
      const target = a[key] as Record<string, number>;
      for (const [k, n] of Object.entries(x)) target[k] = (target[k] ?? 0) + (n ?? 0);
    }
  }
}
