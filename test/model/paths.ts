/**
 * The model: test paths generated from `machines/job.machine.ts` with `@xstate/graph`.
 *
 * The machine's context holds timestamps, so its concrete state space is infinite. The
 * graph is made finite in two ways:
 *
 * - an abstraction (`abstractKey`) that keeps the stage, epoch, holder, attempt,
 *   failures, retry limit and dead reason exactly and keeps only *whether* each time
 *   field is set. Revision, renewals and the last write time are left out: no guard
 *   reads them, so SUPERSEDE from `queued` to `queued`, RENEW and RECORD are self-loops of
 *   the abstract graph (which the covering walks still take). Every guard depends on the
 *   abstraction only, given the invariants the event cases respect (a held lease expires
 *   after "now", a failed job's retry is due after "now"), so two concrete states with
 *   one key accept the same cases.
 * - bounds (`BOUNDS`): a case whose successor would pass the bound on attempts or on the
 *   lease epoch is not offered, so the graph is finite.
 *
 * Events are *cases*: an event type with a variant (`BUILD:holder`, `BUILD:stale`,
 * `BUILD:stranger`, `LEASE_EXPIRED:early`...). A case builds its concrete machine event
 * from a context and the current time (`t`); paths are replayed case by case (see
 * check.ts), re-concretising each event from the replayed model state and the replayed
 * clock, so the model state compared with the store is always exact.
 */
import {
  type AdjacencyMap,
  getAdjacencyMap,
  getShortestPaths,
  getSimplePaths,
  type StatePath,
} from '@xstate/graph';
import { type AnyStateMachine, initialTransition, transition } from 'xstate';
import {
  type JobContext,
  type JobMachineEvent,
  type JobMachineEventType,
  jobMachine,
  type WORKER_EVENT_TYPES,
} from '../../machines/index.js';

/** A job machine snapshot. */
export type Snap = ReturnType<typeof jobMachine.resolveState>;

/** Simulated time origin (the SimulatedClock's default start). */
export const T0 = Date.parse('2026-01-01T00:00:00.000Z');
/** Lease granted by a claim (the coordinator's `leaseMs`). */
export const LEASE_MS = 60_000;
/** Lease granted by a renewal (`extendMs`): differs from a claim's, so a renewal shows. */
export const RENEW_MS = 120_000;
/** Retry policy of the job under test: fixed backoff, no jitter at random() = 0.5. */
export const RETRY_DELAY_MS = 10_000;
export const MAX_RETRIES = 1;
/** Wall budget of the job under test (the driver jumps past it for BUDGET_EXCEEDED). */
export const WALL_MS = 50 * 60_000;
export const WALL = 'PT50M';
/** Token budget of the job under test (the driver reports more for BUDGET_EXCEEDED). */
export const TOKEN_BUDGET = 1000;

/** Factories: `A` and `B` claim in turn; `Z` never holds a lease (the wrong holder). */
export const STRANGER = 'Z';
export const nextClaimer = (ctx: JobContext): string => (ctx.attempt % 2 === 0 ? 'A' : 'B');

export interface Bounds {
  /** Claims at most. */
  attempts: number;
  /** Lease epoch at most. */
  epoch: number;
}

/**
 * Bounds of the full model (adjacency, shortest paths, covering walks): two attempts and
 * four epochs reach every branch of every guard (a second failure exhausts the retry).
 */
export const BOUNDS: Bounds = { attempts: 2, epoch: 4 };
/**
 * Simple paths: their number grows exponentially with the graph (over every case at
 * BOUNDS: 275,644), so they run over the lifecycle cases only (the holder's moves,
 * claims, expiry, retry, requeue, cancel, deps) with one lease epoch less: two claims,
 * the second one not ended. Every other case is covered by the shortest paths and the
 * covering walks.
 */
export const SIMPLE_BOUNDS: Bounds = { attempts: 2, epoch: 3 };
export const SIMPLE_CASES: ReadonlySet<string> = new Set([
  'CLAIM',
  'BUILD:holder',
  'REVIEW:holder',
  'TEST:holder',
  'SHIP:holder',
  'FAIL:holder:retryable',
  'FAIL:holder:fatal',
  'RELEASE:holder:met',
  'RELEASE:holder:unmet',
  'LEASE_EXPIRED:due:met',
  'RETRY_DUE:due:met',
  'REQUEUE:met',
  'CANCEL',
  'DEPS_MET',
  'DEPS_UNMET',
]);

/**
 * Ways the dep D leaves `testing` besides going back to `building` (the `DEPS_UNMET`
 * case): its holder fails it (transient), releases it, or its lease expires. The
 * driver reads the way from the event's `via` (the machine ignores that field).
 */
export const DEP_EXITS = ['fail', 'release', 'expiry'] as const;
export type DepExit = (typeof DEP_EXITS)[number] | 'building';

/** An event case: a labelled way to build one concrete machine event. */
export interface Case {
  label: string;
  type: JobMachineEventType;
  /** Who sends a worker event: the holder, the holder with an old epoch, a non-holder. */
  who?: 'holder' | 'stale' | 'stranger';
  make(ctx: JobContext, t: number): JobMachineEvent;
}

type WorkerType = (typeof WORKER_EVENT_TYPES)[number];

function identity(ctx: JobContext, who: 'holder' | 'stale' | 'stranger') {
  const holder = ctx.holder ?? 'A';
  if (who === 'holder') return { factoryId: holder, leaseEpoch: ctx.leaseEpoch };
  if (who === 'stale') return { factoryId: holder, leaseEpoch: ctx.leaseEpoch - 1 };
  return { factoryId: STRANGER, leaseEpoch: ctx.leaseEpoch };
}

function workerCases(type: WorkerType): Case[] {
  const out: Case[] = [];
  for (const who of ['holder', 'stale', 'stranger'] as const) {
    const base = (ctx: JobContext, t: number) => ({ ...identity(ctx, who), now: t });
    const variants: Array<[string, (ctx: JobContext, t: number) => JobMachineEvent]> = [];
    switch (type) {
      case 'FAIL':
        variants.push([
          'retryable',
          (c, t) => ({ type, ...base(c, t), retryable: true, retryAt: t + RETRY_DELAY_MS }),
        ]);
        if (who === 'holder') {
          variants.push([
            'fatal',
            (c, t) => ({ type, ...base(c, t), retryable: false, retryAt: t + RETRY_DELAY_MS }),
          ]);
        }
        break;
      case 'RELEASE':
        variants.push(['met', (c, t) => ({ type, ...base(c, t), depsMet: true })]);
        if (who === 'holder') {
          variants.push(['unmet', (c, t) => ({ type, ...base(c, t), depsMet: false })]);
        }
        break;
      case 'RENEW':
        variants.push(['', (c, t) => ({ type, ...base(c, t), expiresAt: t + RENEW_MS })]);
        break;
      case 'GIVE_BACK':
        variants.push(['', (c, t) => ({ type, ...base(c, t), firstClaimedAt: null })]);
        break;
      default:
        variants.push(['', (c, t) => ({ type, ...base(c, t) })]);
    }
    for (const [variant, make] of variants) {
      out.push({ label: `${type}:${who}${variant ? `:${variant}` : ''}`, type, who, make });
    }
  }
  return out;
}

/**
 * Every case of every event type. Keyed by event type so that a type the machine gains
 * without a case here leaves that type uncovered (and the coverage test fails).
 */
export const CASES_BY_TYPE: Readonly<Record<JobMachineEventType, readonly Case[]>> = {
  CLAIM: [
    {
      label: 'CLAIM',
      type: 'CLAIM',
      make: (c, t) => ({
        type: 'CLAIM',
        factoryId: nextClaimer(c),
        now: t,
        expiresAt: t + LEASE_MS,
      }),
    },
  ],
  DEPS_MET: [{ label: 'DEPS_MET', type: 'DEPS_MET', make: () => ({ type: 'DEPS_MET' }) }],
  DEPS_UNMET: [
    { label: 'DEPS_UNMET', type: 'DEPS_UNMET', make: () => ({ type: 'DEPS_UNMET' }) },
    // The same machine event, brought about by each other way the dep can leave
    // `testing` (issue 10, item 3: only the move back to building used to notify).
    ...DEP_EXITS.map(
      (via): Case => ({
        label: `DEPS_UNMET:${via}`,
        type: 'DEPS_UNMET',
        make: () => ({ type: 'DEPS_UNMET', via }) as JobMachineEvent,
      }),
    ),
  ],
  BUILD: workerCases('BUILD'),
  REVIEW: workerCases('REVIEW'),
  TEST: workerCases('TEST'),
  SHIP: workerCases('SHIP'),
  FAIL: workerCases('FAIL'),
  RENEW: workerCases('RENEW'),
  RELEASE: workerCases('RELEASE'),
  RECORD: workerCases('RECORD'),
  GIVE_BACK: workerCases('GIVE_BACK'),
  LEASE_EXPIRED: [
    ...[true, false].map(
      (depsMet): Case => ({
        label: `LEASE_EXPIRED:due:${depsMet ? 'met' : 'unmet'}`,
        type: 'LEASE_EXPIRED',
        make: (c, t) => ({
          type: 'LEASE_EXPIRED',
          now: Math.max(t, c.leaseExpiresAt ?? t),
          depsMet,
        }),
      }),
    ),
    {
      // One ms before the lease ends (or now, when no lease is held).
      label: 'LEASE_EXPIRED:early',
      type: 'LEASE_EXPIRED',
      make: (c, t) => ({
        type: 'LEASE_EXPIRED',
        now: c.leaseExpiresAt === null ? t : Math.max(t, c.leaseExpiresAt - 1),
        depsMet: true,
      }),
    },
  ],
  RETRY_DUE: [
    ...[true, false].map(
      (depsMet): Case => ({
        label: `RETRY_DUE:due:${depsMet ? 'met' : 'unmet'}`,
        type: 'RETRY_DUE',
        make: (c, t) => ({ type: 'RETRY_DUE', now: Math.max(t, c.notBefore ?? t), depsMet }),
      }),
    ),
    {
      label: 'RETRY_DUE:early',
      type: 'RETRY_DUE',
      make: (c, t) => ({
        type: 'RETRY_DUE',
        now: c.notBefore === null ? t : Math.max(t, c.notBefore - 1),
        depsMet: true,
      }),
    },
  ],
  SUPERSEDE: [true, false].map(
    (depsMet): Case => ({
      label: `SUPERSEDE:${depsMet ? 'met' : 'unmet'}`,
      type: 'SUPERSEDE',
      make: () => ({ type: 'SUPERSEDE', depsMet, maxRetries: MAX_RETRIES }),
    }),
  ),
  REQUEUE: [true, false].map(
    (depsMet): Case => ({
      label: `REQUEUE:${depsMet ? 'met' : 'unmet'}`,
      type: 'REQUEUE',
      make: () => ({ type: 'REQUEUE', depsMet }),
    }),
  ),
  CANCEL: [{ label: 'CANCEL', type: 'CANCEL', make: () => ({ type: 'CANCEL' }) }],
  DEPENDENCY_FAILED: [
    {
      label: 'DEPENDENCY_FAILED',
      type: 'DEPENDENCY_FAILED',
      make: () => ({ type: 'DEPENDENCY_FAILED' }),
    },
  ],
  BUDGET_EXCEEDED: [
    {
      label: 'BUDGET_EXCEEDED',
      type: 'BUDGET_EXCEEDED',
      make: () => ({ type: 'BUDGET_EXCEEDED' }),
    },
  ],
};

export const ALL_CASES: readonly Case[] = Object.values(CASES_BY_TYPE).flat();
export const CASE_BY_LABEL: ReadonlyMap<string, Case> = new Map(ALL_CASES.map((c) => [c.label, c]));

/** The cases that make sense in a context (a stale epoch needs an epoch ≥ 1). */
export function casesFor(ctx: JobContext): Case[] {
  return ALL_CASES.filter((c) => c.who !== 'stale' || ctx.leaseEpoch >= 1);
}

/** The graph's notion of "now" in a state: the latest time its context mentions. */
export function graphTime(ctx: JobContext): number {
  return Math.max(T0, ctx.lastWriteAt ?? T0, ctx.firstClaimedAt ?? T0);
}

/** Which case built each event object the graph holds (paths carry event objects). */
const caseOfEvent = new WeakMap<object, Case>();

export function caseOf(event: object): Case {
  const c = caseOfEvent.get(event);
  if (!c) throw new Error(`event ${JSON.stringify(event)} was not built from a case`);
  return c;
}

function eventsOf(snap: Snap): JobMachineEvent[] {
  const t = graphTime(snap.context);
  return casesFor(snap.context).map((c) => {
    const e = c.make(snap.context, t);
    caseOfEvent.set(e, c);
    return e;
  });
}

export function withinBounds(ctx: JobContext, b: Bounds): boolean {
  return ctx.attempt <= b.attempts && ctx.leaseEpoch <= b.epoch;
}

/** The abstraction: counters and identities exactly, time fields only as set / not set. */
export function abstractKey(snap: Snap): string {
  const c = snap.context;
  return JSON.stringify([
    snap.value,
    c.leaseEpoch,
    c.holder,
    c.attempt,
    c.failures,
    c.maxRetries,
    c.deadReason,
    c.leaseExpiresAt !== null,
    c.notBefore !== null,
    c.firstClaimedAt !== null,
  ]);
}

/** Leaves a (state, case) pair out of the graph (e.g. no coordinator entry point). */
export type ExcludePair = (
  type: JobMachineEventType,
  ctx: JobContext,
  accepted: boolean,
) => unknown;

export interface Model {
  machine: AnyStateMachine;
  bounds: Bounds;
  initial: Snap;
  exclude: ExcludePair;
}

export function makeModel(
  bounds: Bounds = BOUNDS,
  exclude: ExcludePair = () => null,
  machine: AnyStateMachine = jobMachine,
): Model {
  const [initial] = initialTransition(machine, { maxRetries: MAX_RETRIES });
  return { machine, bounds, initial: initial as Snap, exclude };
}

/** True when the machine accepts the event (a rejected event returns the same snapshot). */
export function accepts(model: Model, snap: Snap, event: JobMachineEvent): boolean {
  const [next] = transition(model.machine, snap, event);
  return next !== snap;
}

/** Events of a state: every case (rejected ones too), minus accepted ones out of bounds. */
function allEventsOf(model: Model) {
  return (snap: Snap): JobMachineEvent[] =>
    eventsOf(snap).filter((e) => {
      const [next] = transition(model.machine, snap, e);
      const accepted = next !== snap;
      if (model.exclude(e.type, snap.context, accepted)) return false;
      return !accepted || withinBounds((next as Snap).context, model.bounds);
    });
}

/** Only the accepted events of a state (within bounds): the edges paths follow. */
function acceptedEventsOf(model: Model) {
  return (snap: Snap): JobMachineEvent[] =>
    eventsOf(snap).filter((e) => {
      const [next] = transition(model.machine, snap, e);
      if (next === snap || model.exclude(e.type, snap.context, true)) return false;
      return withinBounds((next as Snap).context, model.bounds);
    });
}

type Traversal = NonNullable<Parameters<typeof getShortestPaths<typeof jobMachine>>[1]>;

function traversal(model: Model, events: (s: Snap) => JobMachineEvent[]): Traversal {
  return {
    fromState: model.initial,
    events: events as Traversal['events'],
    serializeState: (s) => abstractKey(s as Snap),
    serializeEvent: (e) => caseOf(e).label as never,
  };
}

/**
 * The abstract adjacency map over every case, rejected ones included (a rejected case is
 * a self-loop whose target is the very same snapshot object).
 */
export function adjacency(model: Model): AdjacencyMap<Snap, JobMachineEvent> {
  return getAdjacencyMap(
    model.machine as typeof jobMachine,
    traversal(model, allEventsOf(model)) as never,
  ) as unknown as AdjacencyMap<Snap, JobMachineEvent>;
}

/** One (state, case) pair of the adjacency map. */
export interface Pair {
  key: string;
  state: Snap;
  case: Case;
  accepted: boolean;
  /** The abstract state the case leads to (`key` itself when rejected). */
  nextKey: string;
}

export function pairsOf(adj: AdjacencyMap<Snap, JobMachineEvent>): Pair[] {
  const out: Pair[] = [];
  for (const [key, v] of Object.entries(adj)) {
    for (const tr of Object.values(v.transitions) as Array<{
      event: JobMachineEvent;
      state: Snap;
    }>) {
      out.push({
        key,
        state: v.state,
        case: caseOf(tr.event),
        accepted: tr.state !== v.state,
        nextKey: abstractKey(tr.state),
      });
    }
  }
  return out;
}

/** A generated path as the case labels of its steps, and the abstract key after each. */
export interface ModelPath {
  kind: 'shortest' | 'simple' | 'walk';
  steps: Array<{ label: string; key: string }>;
}

function toModelPath(kind: ModelPath['kind'], p: StatePath<Snap, JobMachineEvent>): ModelPath {
  // @xstate/graph paths start with an `xstate.init` step for the initial state.
  return {
    kind,
    steps: p.steps
      .filter((s) => (s.event.type as string) !== 'xstate.init')
      .map((s) => ({ label: caseOf(s.event).label, key: abstractKey(s.state) })),
  };
}

/** Shortest path to every abstract state (edges: accepted cases). */
export function shortestPaths(model: Model): ModelPath[] {
  return getShortestPaths(
    model.machine as typeof jobMachine,
    traversal(model, acceptedEventsOf(model)) as never,
  ).map((p) => toModelPath('shortest', p as never));
}

/** Every simple path (no abstract state twice) to every abstract state, within `bounds`. */
export function simplePaths(model: Model, only?: ReadonlySet<string>): ModelPath[] {
  const accepted = acceptedEventsOf(model);
  const events = only
    ? (s: Snap) => accepted(s).filter((e) => only.has(caseOf(e).label))
    : accepted;
  return getSimplePaths(model.machine as typeof jobMachine, traversal(model, events) as never).map(
    (p) => toModelPath('simple', p as never),
  );
}

/**
 * Transition coverage: walks from the initial state that together take every accepted
 * (state, case) pair of the adjacency map. A walk takes an untaken pair of its current
 * state if there is one, else goes the shortest way to the nearest state that has one;
 * it ends after `maxSteps` steps or when no untaken pair is reachable. Fewer, longer
 * paths than "shortest path + pair" for each pair: each path costs a fresh store.
 */
export function coveringWalks(model: Model, pairs: Pair[], maxSteps = MAX_WALK): ModelPath[] {
  const out = new Map<string, Pair[]>();
  for (const p of pairs) {
    if (!p.accepted) continue;
    const list = out.get(p.key) ?? [];
    list.push(p);
    out.set(p.key, list);
  }
  const untaken = new Set(pairs.filter((p) => p.accepted));
  const hasUntaken = (key: string) => (out.get(key) ?? []).some((p) => untaken.has(p));
  /** The shortest way (accepted pairs) from `from` to the nearest state with an untaken pair. */
  const route = (from: string): Pair[] | null => {
    const via = new Map<string, Pair | null>([[from, null]]);
    const queue = [from];
    for (let i = 0; i < queue.length; i++) {
      const key = queue[i] as string;
      if (hasUntaken(key)) {
        const steps: Pair[] = [];
        for (let p = via.get(key); p; p = via.get(p.key)) steps.unshift(p);
        return steps;
      }
      for (const p of out.get(key) ?? []) {
        if (via.has(p.nextKey)) continue;
        via.set(p.nextKey, p);
        queue.push(p.nextKey);
      }
    }
    return null;
  };
  const start = abstractKey(model.initial);
  const walks: ModelPath[] = [];
  while (untaken.size > 0) {
    const steps: Pair[] = [];
    let cur = start;
    while (steps.length < maxSteps) {
      // Untaken pairs that lead on first: a walk ends at a state without accepted pairs.
      const options = (out.get(cur) ?? []).filter((p) => untaken.has(p));
      const next = options.find((p) => out.has(p.nextKey)) ?? options[0] ?? null;
      const way = next ? [next] : route(cur);
      if (!way || way.length === 0) break;
      for (const p of way) {
        untaken.delete(p);
        steps.push(p);
      }
      cur = (way.at(-1) as Pair).nextKey;
    }
    if (steps.length === 0) throw new Error('covering walks: an accepted pair is unreachable');
    walks.push({
      kind: 'walk',
      steps: steps.map((p) => ({ label: p.case.label, key: p.nextKey })),
    });
  }
  return walks;
}

/** Steps of one covering walk at most (a failing step stops its walk). */
export const MAX_WALK = 40;

/** Drops every path whose case sequence is a prefix of another's (or equal to one). */
export function dedupePrefixes(paths: ModelPath[]): ModelPath[] {
  const sorted = [...paths].sort((a, b) => b.steps.length - a.steps.length);
  const kept: ModelPath[] = [];
  const seen = new Set<string>();
  for (const p of sorted) {
    const labels = p.steps.map((s) => s.label);
    const id = labels.join(' ');
    if (seen.has(id)) continue;
    // Mark every prefix of a kept path as seen.
    for (let i = 1; i <= labels.length; i++) seen.add(labels.slice(0, i).join(' '));
    kept.push(p);
  }
  return kept;
}

/** Stages and event types that occur in the paths. */
export function coverage(model: Model, paths: ModelPath[]) {
  const states = new Set<string>([String(model.initial.value)]);
  const events = new Set<string>();
  for (const p of paths) {
    for (const s of p.steps) {
      events.add((CASE_BY_LABEL.get(s.label) as Case).type);
      states.add(JSON.parse(s.key)[0] as string);
    }
  }
  return { states, events };
}
