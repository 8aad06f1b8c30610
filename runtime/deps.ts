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
 * (`[jobId, dep, ..., jobId]`) or null. Breadth-first, one `depsOfMany` call per level
 * (a store answers a level with one query), each job looked up at most once.
 * `depsOfMany` answers, for each id asked, its deps (null or absent: no such job).
 */
export async function findCycle(
  jobId: string,
  deps: readonly string[],
  depsOfMany: (ids: string[]) => Promise<ReadonlyMap<string, readonly string[] | null>>,
): Promise<string[] | null> {
  const parent = new Map<string, string>();
  let frontier: string[] = [];
  for (const d of deps) {
    if (d === jobId) return [jobId, jobId];
    if (!parent.has(d)) {
      parent.set(d, jobId);
      frontier.push(d);
    }
  }
  const pathTo = (id: string): string[] => {
    const path: string[] = [];
    for (
      let cur: string | undefined = id;
      cur !== undefined && cur !== jobId;
      cur = parent.get(cur)
    ) {
      path.push(cur);
    }
    return [jobId, ...path.reverse(), jobId];
  };
  while (frontier.length > 0) {
    const known = await depsOfMany(frontier);
    const next: string[] = [];
    for (const id of frontier) {
      for (const n of known.get(id) ?? []) {
        if (n === jobId) return pathTo(id);
        if (!parent.has(n)) {
          parent.set(n, id);
          next.push(n);
        }
      }
    }
    frontier = next;
  }
  return null;
}
