/**
 * The generated test plan: the coordinator graph (pairs the coordinator can produce),
 * the whole machine graph, the paths over them, and the Cosmos sample.
 */
import { noEntryPoint } from './driver.js';
import {
  abstractKey,
  adjacency,
  BOUNDS,
  CASE_BY_LABEL,
  coveringWalks,
  dedupePrefixes,
  type Model,
  type ModelPath,
  makeModel,
  type Pair,
  pairsOf,
  SIMPLE_BOUNDS,
  SIMPLE_CASES,
  shortestPaths,
  simplePaths,
} from './paths.js';

export interface Plan {
  /** The model without the pairs that have no coordinator entry point. */
  model: Model;
  /** The whole machine (every pair), for machine-level coverage. */
  machineModel: Model;
  /** Every (abstract state, case) pair of the coordinator graph's adjacency map. */
  pairs: Pair[];
  /** Every pair of the whole machine's adjacency map. */
  machinePairs: Pair[];
  rejectedByKey: Map<string, Pair[]>;
  shortest: ModelPath[];
  simple: ModelPath[];
  /** Walks that together take every accepted pair of the adjacency map. */
  transition: ModelPath[];
  /** Shortest paths, simple paths and walks, prefixes of others dropped: what is driven. */
  driven: ModelPath[];
  machineShortest: ModelPath[];
}

let cached: Plan | undefined;

export function makePlan(): Plan {
  if (cached) return cached;
  const model = makeModel(BOUNDS, noEntryPoint);
  const machineModel = makeModel(BOUNDS);
  const pairs = pairsOf(adjacency(model));
  const rejectedByKey = new Map<string, Pair[]>();
  for (const p of pairs) {
    if (p.accepted) continue;
    const list = rejectedByKey.get(p.key) ?? [];
    list.push(p);
    rejectedByKey.set(p.key, list);
  }
  const shortest = shortestPaths(model);
  const simple = simplePaths(makeModel(SIMPLE_BOUNDS, noEntryPoint), SIMPLE_CASES);
  const transition = coveringWalks(model, pairs);
  // Shortest first: a bug shows on the shortest path that has it.
  const driven = dedupePrefixes([...shortest, ...simple, ...transition]).sort(
    (a, b) => a.steps.length - b.steps.length,
  );
  cached = {
    model,
    machineModel,
    pairs,
    machinePairs: pairsOf(adjacency(machineModel)),
    rejectedByKey,
    shortest,
    simple,
    transition,
    driven,
    machineShortest: shortestPaths(machineModel),
  };
  return cached;
}

const stageOf = (key: string) => JSON.parse(key)[0] as string;

/**
 * A sample for slow stores: the fewest driven paths (greedy) that together take every
 * (stage, event type) transition the coordinator graph has, and the rejected cases of
 * one abstract state per stage.
 */
export function sampleOf(plan: Plan): { paths: ModelPath[]; rejectedByKey: Map<string, Pair[]> } {
  const initialKey = abstractKey(plan.model.initial);
  const takes = (p: ModelPath) => {
    const out = new Set<string>();
    let key = initialKey;
    for (const s of p.steps) {
      out.add(`${stageOf(key)} ${CASE_BY_LABEL.get(s.label)?.type}`);
      key = s.key;
    }
    return out;
  };
  const candidates = plan.transition.map((p) => ({ p, takes: takes(p) }));
  const todo = new Set(candidates.flatMap((c) => [...c.takes]));
  const paths: ModelPath[] = [];
  while (todo.size > 0) {
    let best = candidates[0];
    let gain = -1;
    for (const c of candidates) {
      let g = 0;
      for (const t of c.takes) if (todo.has(t)) g++;
      // Shorter paths win ties (cheaper to drive).
      if (g > gain || (g === gain && best && c.p.steps.length < best.p.steps.length)) {
        best = c;
        gain = g;
      }
    }
    if (!best || gain <= 0) break;
    paths.push(best.p);
    for (const t of best.takes) todo.delete(t);
  }
  const stages = new Set<string>();
  const rejectedByKey = new Map<string, Pair[]>();
  for (const p of paths) {
    for (const key of [initialKey, ...p.steps.map((s) => s.key)]) {
      if (stages.has(stageOf(key))) continue;
      stages.add(stageOf(key));
      rejectedByKey.set(key, plan.rejectedByKey.get(key) ?? []);
    }
  }
  return { paths, rejectedByKey };
}
