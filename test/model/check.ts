/**
 * Runs generated paths against a coordinator and collects violations as values.
 *
 * A path is replayed case by case: each case is made concrete from the replayed model
 * state and the coordinator's clock, applied to the model (the real job machine) and
 * performed on the coordinator (through the driver); then the stored job must equal the
 * model (stage, epoch, holder, mirrored fields, persisted snapshot, open run, lease
 * document) and the call must report what the machine and the job-draft classification
 * say. At the first visit of each abstract state, every case the machine rejects there
 * is performed too: the job's documents must stay byte-for-byte the same (job incl.
 * etag, events, runs, lease, artifacts) and the call must report the expected rejection.
 */
import { isDeepStrictEqual } from 'node:util';
import { type AnyStateMachine, transition } from 'xstate';
import type { JobMachineEvent } from '../../machines/index.js';
import { iso } from '../../runtime/clock.js';
import type { StoreFactory } from '../support/stores.js';
import { expectedOutcome, noEntryPoint, type Outcome, perform, World } from './driver.js';
import {
  abstractKey,
  accepts,
  CASE_BY_LABEL,
  type Case,
  type Model,
  type ModelPath,
  type Pair,
  type Snap,
  WALL_MS,
} from './paths.js';

export interface Violation {
  store: string;
  /** The path's case labels up to and including the failing one. */
  path: string[];
  /** `step` (a path step) or `rejected` (a rejected case at a state). */
  kind: 'step' | 'rejected' | 'setup';
  message: string;
}

export interface RunOptions {
  factory: StoreFactory;
  model: Model;
  /** The machine the coordinator runs (default: the real one). The model always runs the real one. */
  coordinatorMachine?: AnyStateMachine;
  /** Rejected pairs by abstract state key (from the adjacency map). */
  rejectedByKey: ReadonlyMap<string, readonly Pair[]>;
  /** Abstract states whose rejected cases were already checked on this store (shared). */
  visited: Set<string>;
  /** Every (state key, case label) pair checked on this store, for the completeness check. */
  checked: Set<string>;
}

export const pairId = (key: string, label: string) => `${key} ${label}`;

const same = (a: Outcome, b: Outcome) => isDeepStrictEqual(a, b);
const show = (o: Outcome) => (o.status === 'error' ? o.code : o.status);
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

/** Differences between the stored job's documents and the model state. */
export async function compareWithModel(
  w: World,
  model: Model,
  m: Snap,
): Promise<{ diffs: string[] }> {
  const diffs: string[] = [];
  const job = await w.h.store.jobs.read(w.h.product, w.jobId);
  if (!job) return { diffs: ['job is missing'] };
  const c = m.context;
  const expect = (what: string, actual: unknown, expected: unknown) => {
    if (!isDeepStrictEqual(actual, expected)) {
      diffs.push(`${what}: stored ${JSON.stringify(actual)}, model ${JSON.stringify(expected)}`);
    }
  };
  expect('stage', job.stage, m.value);
  expect('leaseEpoch', job.leaseEpoch, c.leaseEpoch);
  expect('holder', job.holderFactoryId, c.holder);
  expect('leaseExpiresAt', job.leaseExpiresAt, isoOrNull(c.leaseExpiresAt));
  expect('attempt', job.attempt, c.attempt);
  expect('failures', job.failures, c.failures);
  expect('notBefore', job.notBefore, isoOrNull(c.notBefore));
  expect('deadReason', job.deadReason, c.deadReason);
  expect('firstClaimedAt', job.firstClaimedAt, isoOrNull(c.firstClaimedAt));
  const persisted = JSON.parse(JSON.stringify(model.machine.getPersistedSnapshot(m)));
  expect('snapshot', job.snapshot, persisted);
  expect(
    'open run',
    job.run && {
      attempt: job.run.attempt,
      factoryId: job.run.factoryId,
      epoch: job.run.leaseEpoch,
    },
    c.holder === null ? null : { attempt: c.attempt, factoryId: c.holder, epoch: c.leaseEpoch },
  );
  const lease = await w.h.store.leases.read(w.jobId, w.jobId);
  const stored = lease && {
    holder: lease.holderFactoryId,
    epoch: lease.leaseEpoch,
    expiresAt: lease.expiresAt,
    renewals: lease.renewals,
    held: lease.status === 'held',
  };
  const modelled =
    c.leaseEpoch === 0
      ? null
      : {
          holder: c.holder,
          epoch: c.leaseEpoch,
          expiresAt: isoOrNull(c.leaseExpiresAt),
          renewals: c.renewals,
          held: c.holder !== null,
        };
  expect('lease document', stored, modelled);
  return { diffs };
}

async function dump(w: World): Promise<string> {
  return JSON.stringify(await w.h.dump(w.jobId));
}

/** Order of rejected cases at one state: clock-jumping triggers last. */
const JUMPS_LAST = (p: Pair) => (p.case.type === 'BUDGET_EXCEEDED' ? 1 : 0);

/**
 * Performs every rejected case of `m`'s abstract state. Returns false if one changed the
 * store (the replay cannot go on from a state the model no longer describes).
 */
async function checkRejections(
  w: World,
  opts: RunOptions,
  m: Snap,
  trail: string[],
  out: Violation[],
): Promise<boolean> {
  const key = abstractKey(m);
  if (opts.visited.has(key)) return true;
  opts.visited.add(key);
  const pairs = [...(opts.rejectedByKey.get(key) ?? [])].sort(
    (a, b) => JUMPS_LAST(a) - JUMPS_LAST(b),
  );
  let before = await dump(w);
  for (const pair of pairs) {
    const e = pair.case.make(m.context, w.h.clock.now());
    if (accepts(opts.model, m, e)) {
      throw new Error(`model: ${pair.case.label} is accepted in ${key} (abstraction unsound)`);
    }
    const where = [...trail, `${pair.case.label} (rejected)`];
    let performed: Awaited<ReturnType<typeof perform>>;
    try {
      performed = await perform(w, e, m);
    } catch (err) {
      out.push({
        store: opts.factory.name,
        path: where,
        kind: 'rejected',
        message: `threw: ${String(err)}`,
      });
      return false;
    }
    opts.checked.add(pairId(key, pair.case.label));
    const expected = expectedOutcome(m.context, e, false);
    if (!same(performed.outcome, expected)) {
      out.push({
        store: opts.factory.name,
        path: where,
        kind: 'rejected',
        message: `reported ${show(performed.outcome)}, expected ${show(expected)}`,
      });
    }
    const after = await dump(w);
    if (after !== before) {
      const { diffs } = await compareWithModel(w, opts.model, m);
      out.push({
        store: opts.factory.name,
        path: where,
        kind: 'rejected',
        message: `a rejected event changed the store${diffs.length ? `: ${diffs.join('; ')}` : ' (derived documents)'}`,
      });
      return false;
    }
    before = after;
  }
  return true;
}

/** Replays one path; returns its violations (empty when the coordinator agrees with the model). */
export async function runPath(path: ModelPath, opts: RunOptions): Promise<Violation[]> {
  const out: Violation[] = [];
  let w: World;
  try {
    w = await World.open(opts.factory, opts.coordinatorMachine);
  } catch (err) {
    return [
      { store: opts.factory.name, path: [], kind: 'setup', message: `threw: ${String(err)}` },
    ];
  }
  try {
    let m = opts.model.initial;
    const trail: string[] = [];
    const initial = await compareWithModel(w, opts.model, m);
    if (initial.diffs.length > 0) {
      out.push({
        store: opts.factory.name,
        path: [],
        kind: 'setup',
        message: initial.diffs.join('; '),
      });
      return out;
    }
    for (const step of path.steps) {
      if (!(await checkRejections(w, opts, m, trail, out))) return out;
      const c = CASE_BY_LABEL.get(step.label) as Case;
      const now = w.h.clock.now();
      const { firstClaimedAt } = m.context;
      const ended = m.value === 'shipped' || m.value === 'dead_letter';
      if (!ended && firstClaimedAt !== null && now > firstClaimedAt + WALL_MS) {
        // The coordinator would end the job on its wall budget: the model cannot follow.
        throw new Error(`model: the path ran past the wall budget before ${c.label}`);
      }
      const e = c.make(m.context, now);
      const key = abstractKey(m);
      trail.push(c.label);
      if (!accepts(opts.model, m, e))
        throw new Error(`model: path step ${c.label} rejected in ${key}`);
      if (noEntryPoint(e.type, m.context, true)) {
        throw new Error(`model: path step ${c.label} in ${key} has no coordinator entry point`);
      }
      let performed: Awaited<ReturnType<typeof perform>>;
      try {
        performed = await perform(w, e, m);
      } catch (err) {
        out.push({
          store: opts.factory.name,
          path: [...trail],
          kind: 'step',
          message: `threw: ${String(err)}`,
        });
        return out;
      }
      opts.checked.add(pairId(key, c.label));
      let next = m;
      for (const d of performed.delivered)
        next = transition(opts.model.machine, next, d as JobMachineEvent)[0] as Snap;
      if (abstractKey(next) !== step.key) {
        throw new Error(`model: ${c.label} led to ${abstractKey(next)}, the path says ${step.key}`);
      }
      const expected = expectedOutcome(m.context, e, true);
      if (!same(performed.outcome, expected)) {
        out.push({
          store: opts.factory.name,
          path: [...trail],
          kind: 'step',
          message: `reported ${show(performed.outcome)}, expected ${show(expected)}`,
        });
      }
      const { diffs } = await compareWithModel(w, opts.model, next);
      if (diffs.length > 0) {
        out.push({
          store: opts.factory.name,
          path: [...trail],
          kind: 'step',
          message: diffs.join('; '),
        });
        return out;
      }
      m = next;
    }
    await checkRejections(w, opts, m, trail, out);
    return out;
  } finally {
    await w.close();
  }
}

/** Runs paths in order; stops collecting after `maxViolations`. */
export async function runPaths(
  paths: readonly ModelPath[],
  opts: RunOptions,
  maxViolations = 50,
): Promise<Violation[]> {
  const all: Violation[] = [];
  for (const p of paths) {
    all.push(...(await runPath(p, opts)));
    if (all.length >= maxViolations) break;
  }
  return all;
}

export function formatViolation(v: Violation): string {
  return `[${v.store}] ${v.kind} after ${v.path.join(' → ') || '(submit)'}: ${v.message}`;
}
