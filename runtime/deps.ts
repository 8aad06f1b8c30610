/**
 * Dependencies between jobs of one product: are they met, did one fail, would new
 * edges close a cycle.
 */
import type { DepsMode, JobDoc, Stage } from './types.js';

/** Stages that satisfy a dependency in each mode. */
const SATISFIES: Readonly<Record<DepsMode, ReadonlySet<Stage>>> = {
  hard: new Set<Stage>(['shipped']),
  soft: new Set<Stage>(['testing', 'shipped']),
};

export interface DepsStatus {
  /** Every dep is in a satisfying stage. */
  met: boolean;
  /** A dep that ended in `dead_letter`, if any. */
  failedDep: string | null;
  /** Deps that name no job of the product. */
  missing: string[];
}

/** Evaluates `deps` given their current documents (`undefined` = no such job). */
export function evaluateDeps(
  deps: readonly string[],
  mode: DepsMode,
  lookup: (id: string) => Pick<JobDoc, 'stage'> | undefined | null,
): DepsStatus {
  let met = true;
  let failedDep: string | null = null;
  const missing: string[] = [];
  for (const id of deps) {
    const dep = lookup(id);
    if (!dep) {
      missing.push(id);
      met = false;
      continue;
    }
    if (dep.stage === 'dead_letter' && failedDep === null) failedDep = id;
    if (!SATISFIES[mode].has(dep.stage)) met = false;
  }
  return { met, failedDep, missing };
}

/**
 * Finds a cycle that edges `jobId → deps` would close: a path from one of `deps` back
 * to `jobId` through existing jobs' deps. Returns the cycle as ids
 * (`[jobId, dep, ..., jobId]`) or null. Iterative DFS; each job is read at most once.
 */
export async function findCycle(
  jobId: string,
  deps: readonly string[],
  depsOf: (id: string) => Promise<readonly string[] | null>,
): Promise<string[] | null> {
  const visited = new Set<string>();
  const parent = new Map<string, string>();
  const stack: string[] = [];
  for (const d of deps) {
    if (d === jobId) return [jobId, jobId];
    if (!parent.has(d)) {
      parent.set(d, jobId);
      stack.push(d);
    }
  }
  while (stack.length > 0) {
    const id = stack.pop() as string;
    if (visited.has(id)) continue;
    visited.add(id);
    const next = (await depsOf(id)) ?? [];
    for (const n of next) {
      if (n === jobId) {
        const path = [jobId];
        for (
          let cur: string | undefined = id;
          cur !== undefined && cur !== jobId;
          cur = parent.get(cur)
        ) {
          path.push(cur);
        }
        // path is jobId, id, ...back to the first dep; the cycle reads jobId → dep → ... → id → jobId
        return [jobId, ...path.slice(1).reverse(), jobId];
      }
      if (!visited.has(n)) {
        if (!parent.has(n)) parent.set(n, id);
        stack.push(n);
      }
    }
  }
  return null;
}
