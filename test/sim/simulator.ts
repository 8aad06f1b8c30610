/**
 * The deterministic simulator: factories, a supervisor and coordinator processes on one
 * in-process store, driven step by step by a schedule (see `schedule.ts`), with faults,
 * and the invariants checked after every step (see `checks.ts`).
 *
 * Determinism: time is a `SimulatedClock` (the supervisor's timers fire when a step
 * moves it); all jitter comes from the schedule's seeded PRNG; the stores are in
 * process; ids are derived from names. A schedule therefore replays exactly.
 *
 * Processes: `processes` Coordinator instances share the store (two `fleet serve`
 * processes on one database); factories talk to either. The supervisor (the real
 * `startSupervisor` loop, on manual timers) runs in the last one. A crash replaces a
 * process by a fresh Coordinator on the same store: its mailbox, projections and
 * sequence counter are gone, as after a restart.
 */
import type { AnyStateMachine } from 'xstate';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { openSqliteStore } from '../../adapters/store/sqlite/index.js';
import { jobIdFor } from '../../runtime/canonical.js';
import { ms, SimulatedClock } from '../../runtime/clock.js';
import { Coordinator } from '../../runtime/coordinator.js';
import type { DocumentStore } from '../../runtime/document-store.port.js';
import type { Result } from '../../runtime/errors.js';
import { type Supervisor, startSupervisor, type TimerClock } from '../../runtime/supervisor.js';
import type {
  ClaimGrant,
  EventDoc,
  JobDoc,
  PatchInput,
  Priority,
  ProgressInput,
  ReleaseInput,
  RenewInput,
  Stage,
  SubmitInput,
} from '../../runtime/types.js';
import {
  type ContainerName,
  type FaultWhen,
  type FaultyStore,
  type FiredFault,
  faulty,
  isInjectedFault,
} from '../support/faulty-store.js';
import { Checker, logicalJob, noopDiff } from './checks.js';
import { type Rng, seededRng } from './rng.js';
import { type Cmd, type Op, opOf, type Schedule } from './schedule.js';

export type StoreKind = 'memory' | 'sqlite';

export interface SimOptions {
  store: StoreKind;
  /** Factories at the start (each one killed is replaced). @defaultValue 3 */
  factories?: number;
  /** Coordinator processes on the store. @defaultValue 2 */
  processes?: number;
  /** @defaultValue 30000 */
  leaseMs?: number;
  /** Rounds of the liveness phase before a job still moving counts as stuck. @defaultValue 30 */
  livenessRounds?: number;
  /**
   * Unknown-outcome (`after`) and timed-out (`late`) faults on `events.append` in a
   * process that survives them. They once tripped a coordinator bug (the event was
   * stored but never reported; see README.md of test/sim), fixed since: on by default;
   * `false` turns them into `before` faults. Crash-tagged faults are always in.
   * @defaultValue true
   */
  unknownAppendOutcomes?: boolean;
  /** Called with a line per step (replaying a failure). */
  trace?: (line: string) => void;
  /** The job machine the coordinators run (the simulator's own tests plant bugs with it). */
  machine?: AnyStateMachine;
  /** Wraps the store under the fault injector (the simulator's own tests plant bugs with it). */
  wrapStore?: (store: DocumentStore) => DocumentStore;
}

export interface SimStats {
  steps: number;
  ops: Partial<Record<Op, number>>;
  faultsArmed: number;
  faultsFired: Record<string, number>;
  crashes: number;
  restarts: number;
  lateLanded: number;
  grants: number;
  zombieWritesFenced: number;
  /** Of those, writes by a factory that had paused past its lease and resumed. */
  resumedZombiesFenced: number;
  rejectedNoops: number;
  invariantChecks: number;
  assertions: number;
  jobs: number;
  shipped: number;
  deadLetter: number;
  livenessRounds: number;
  /** Answers by call and code (`submit:existing`, `transition:FENCED`, ...). */
  results: Record<string, number>;
  /** Jobs in dead_letter at the end, by reason. */
  deadReasons: Record<string, number>;
}

export interface SimResult {
  violations: string[];
  /** Index of the step after which the first violation was found (-1: the liveness phase). */
  failedStep: number | null;
  stats: SimStats;
}

const PRODUCTS = ['pa', 'pb'] as const;
const PRIORITIES: readonly Priority[] = ['medium', 'high', 'low', 'critical'];
const CAPS: readonly (readonly string[])[] = [['py', 'ts'], [], ['py']];
const NEXT: Partial<Record<Stage, PatchInput['to']>> = {
  assigned: 'building',
  building: 'review',
  review: 'testing',
  testing: 'shipped',
};
const TERMINAL = new Set<Stage>(['shipped', 'dead_letter']);

/** Fault points: every container method the coordinator calls. */
const FAULT_POINTS: ReadonlyArray<readonly [ContainerName, string]> = [
  ['jobs', 'replace'],
  ['jobs', 'create'],
  ['jobs', 'read'],
  ['jobs', 'claimCandidates'],
  ['jobs', 'due'],
  ['jobs', 'dependents'],
  ['jobs', 'withOutbox'],
  ['jobs', 'listBlocked'],
  ['jobs', 'countHeld'],
  ['events', 'append'],
  ['events', 'list'],
  ['runs', 'create'],
  ['runs', 'replace'],
  ['runs', 'read'],
  ['leases', 'create'],
  ['leases', 'replace'],
  ['leases', 'read'],
  ['artifacts', 'create'],
  ['factories', 'read'],
  ['factories', 'replace'],
  ['factories', 'create'],
];

/** Crash points: the follow-ups of a job write (`skip` 1 on `jobs.replace`: the outbox clear). */
const CRASH_POINTS: ReadonlyArray<readonly [ContainerName, string, number]> = [
  ['events', 'append', 0],
  ['events', 'append', 1],
  ['runs', 'create', 0],
  ['runs', 'replace', 0],
  ['leases', 'create', 0],
  ['leases', 'replace', 0],
  ['artifacts', 'create', 0],
  ['jobs', 'dependents', 0],
  ['jobs', 'replace', 1],
  ['jobs', 'replace', 0],
  ['jobs', 'create', 0],
];

interface Belief {
  productId: string;
  jobId: string;
  epoch: number;
  stage: Stage;
}

interface Factory {
  id: string;
  caps: readonly string[];
  status: 'alive' | 'paused' | 'dead';
  /** What the factory believes it holds (may be stale: that is a zombie). */
  held: Map<string, Belief>;
}

type Req =
  | { kind: 'submit'; productId: string; input: SubmitInput }
  | { kind: 'claim'; productId: string; factoryId: string; caps: readonly string[] }
  | { kind: 'transition'; productId: string; jobId: string; input: PatchInput }
  | { kind: 'progress'; productId: string; jobId: string; input: ProgressInput }
  | { kind: 'renew'; productId: string; jobId: string; input: RenewInput }
  | { kind: 'release'; productId: string; jobId: string; input: ReleaseInput }
  | { kind: 'cancel'; productId: string; jobId: string; ifMatch?: string }
  | { kind: 'requeue'; productId: string; jobId: string; ifMatch?: string };

const WORKER_KINDS = new Set<Req['kind']>(['transition', 'progress', 'renew', 'release']);

interface Proc {
  index: number;
  gen: number;
  coord: Coordinator;
  delivered: EventDoc[];
}

/** Timers for the supervisor actor that fire only when the simulated clock reaches them. */
class ManualTimers implements TimerClock {
  readonly #clock: SimulatedClock;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  constructor(clock: SimulatedClock) {
    this.#clock = clock;
  }
  setTimeout(fn: () => void, timeoutMs: number): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#clock.now() + timeoutMs, fn });
    return id;
  }
  clearTimeout(id: unknown): void {
    this.#timers.delete(id as number);
  }
  /** Fires every timer due by now, earliest first; returns how many fired. */
  fireDue(): number {
    let fired = 0;
    for (;;) {
      let best: [number, { at: number; fn: () => void }] | null = null;
      for (const entry of this.#timers) {
        if (entry[1].at <= this.#clock.now() && (best === null || entry[1].at < best[1].at))
          best = entry;
      }
      if (best === null) return fired;
      this.#timers.delete(best[0]);
      best[1].fn();
      fired++;
    }
  }
}

/** The error code of a failed Result (or `ok`). */
const codeOf = (r: Result<unknown> | undefined): string =>
  r === undefined ? 'nothing' : r.ok ? 'ok' : r.error.code;

const describeErr = (e: unknown): string =>
  e instanceof Error ? `${e.name}: ${e.message}` : String(e);

export function newStats(): SimStats {
  return {
    steps: 0,
    ops: {},
    faultsArmed: 0,
    faultsFired: {},
    crashes: 0,
    restarts: 0,
    lateLanded: 0,
    grants: 0,
    zombieWritesFenced: 0,
    resumedZombiesFenced: 0,
    rejectedNoops: 0,
    invariantChecks: 0,
    assertions: 0,
    jobs: 0,
    shipped: 0,
    deadLetter: 0,
    livenessRounds: 0,
    results: {},
    deadReasons: {},
  };
}

async function openStore(kind: StoreKind): Promise<DocumentStore> {
  return kind === 'sqlite' ? openSqliteStore({ path: ':memory:' }) : createMemoryStore();
}

export class World {
  readonly opts: Required<Omit<SimOptions, 'trace' | 'machine' | 'wrapStore'>> &
    Pick<SimOptions, 'trace' | 'machine' | 'wrapStore'>;
  readonly rng: Rng;
  readonly clock = new SimulatedClock();
  readonly inner: DocumentStore;
  readonly store: FaultyStore;
  readonly stats = newStats();
  readonly checker: Checker;
  readonly procs: Proc[] = [];
  readonly factories: Factory[] = [];
  /** Jobs known to exist, per product, in the order they were first seen. */
  readonly jobsOf = new Map<string, string[]>(PRODUCTS.map((p) => [p, []]));
  /** Job id → `product/key` (for traces). */
  readonly labels = new Map<string, string>();
  /** Requests sent so far (the last 64), for late and duplicated delivery. */
  readonly sent: Req[] = [];
  readonly timers: ManualTimers;
  supervisor!: Supervisor;
  supervisorRunning = 0;
  #supervisorIdle: Array<() => void> = [];
  /** Fault id → process whose call it failed. */
  readonly #faultProc = new Map<number, number>();
  #firedThisStep: FiredFault[] = [];
  #concurrent = false;
  #outageSteps = 0;
  #factorySeq = 0;
  /** Factories that paused and came back (zombies, if their lease was taken meanwhile). */
  readonly #resumed = new Set<string>();
  #step = 0;

  constructor(inner: DocumentStore, schedule: Schedule, options: SimOptions) {
    this.opts = {
      factories: 3,
      processes: 2,
      leaseMs: 30_000,
      livenessRounds: 30,
      unknownAppendOutcomes: true,
      ...options,
    };
    this.rng = seededRng(schedule.rngSeed);
    this.inner = inner;
    this.store = faulty(options.wrapStore ? options.wrapStore(inner) : inner);
    this.checker = new Checker(this);
    this.timers = new ManualTimers(this.clock);
    this.store.onFault((f) => {
      this.#firedThisStep.push(f);
      const key = `${f.when}:${f.container}.${f.method}`;
      this.stats.faultsFired[key] = (this.stats.faultsFired[key] ?? 0) + 1;
      if (f.container === 'events' && f.method === 'append' && f.when !== 'before') {
        const e = f.args[0] as EventDoc;
        this.checker.unknownAppend(e.id, f.id);
      }
    });
    for (let i = 0; i < this.opts.processes; i++) this.procs.push(this.#newProc(i, 0));
    this.#startSupervisor();
    for (let i = 0; i < this.opts.factories; i++) this.#addFactory();
  }

  get step(): number {
    return this.#step;
  }

  trace(line: string): void {
    this.opts.trace?.(`#${this.#step} ${line}`);
  }

  label(jobId: string): string {
    return this.labels.get(jobId) ?? jobId.slice(0, 12);
  }

  allKnownJobs(): Array<{ productId: string; jobId: string }> {
    const out: Array<{ productId: string; jobId: string }> = [];
    for (const [productId, ids] of this.jobsOf)
      for (const jobId of ids) out.push({ productId, jobId });
    return out;
  }

  /** Records a job as existing (from a submit answer or from the store). */
  know(productId: string, jobId: string, key?: string): void {
    const ids = this.jobsOf.get(productId);
    if (!ids) return;
    if (!ids.includes(jobId)) ids.push(jobId);
    if (key !== undefined) this.labels.set(jobId, `${productId}/${key}`);
  }

  // -------------------------------------------------------------------------
  // Processes and the supervisor
  // -------------------------------------------------------------------------

  #newProc(index: number, gen: number): Proc {
    const coord = new Coordinator({
      store: this.store,
      clock: this.clock,
      random: this.rng,
      leaseMs: this.opts.leaseMs,
      liveProjections: true,
      ...(this.opts.machine ? { machine: this.opts.machine } : {}),
    });
    const proc: Proc = { index, gen, coord, delivered: [] };
    coord.subscribe((event) => {
      const copy = structuredClone(event);
      proc.delivered.push(copy);
      this.checker.delivered(proc, copy);
    });
    return proc;
  }

  get supervisorProc(): Proc {
    return this.procs[this.procs.length - 1] as Proc;
  }

  #startSupervisor(): void {
    const proc = this.supervisorProc;
    this.supervisor = startSupervisor({
      coordinator: proc.coord,
      clock: this.clock,
      timers: this.timers,
      intervalMs: 20_000,
      random: this.rng,
      onReport: (event) => {
        if (event.phase === 'started') {
          this.supervisorRunning++;
          return;
        }
        this.supervisorRunning--;
        if (event.phase === 'failed') this.#attribute(event.error, proc.index);
        if (this.supervisorRunning === 0) {
          const idle = this.#supervisorIdle;
          this.#supervisorIdle = [];
          for (const resolve of idle) resolve();
        }
      },
    });
  }

  /** Waits until no supervisor sweep is running. */
  async supervisorSettled(): Promise<void> {
    while (this.supervisorRunning > 0) {
      await new Promise<void>((resolve) => this.#supervisorIdle.push(resolve));
    }
  }

  /** A fresh Coordinator in process `index` (a restart): memory, mailbox and projections gone. */
  async restart(index: number, why: string): Promise<void> {
    const old = this.procs[index];
    if (!old) return;
    const isSupervisor = index === this.procs.length - 1;
    if (isSupervisor) {
      await this.supervisor.stop();
      this.supervisorRunning = 0;
    }
    await old.coord.drain();
    // The old instance stays subscribed: a request it still had in flight (a restart
    // inside a `par` group) finishes there and is reported there, as in a process that
    // drains before it exits. Its memory is gone with it; nothing reads it again.
    this.checker.processGone(old);
    this.procs[index] = this.#newProc(index, old.gen + 1);
    if (isSupervisor) this.#startSupervisor();
    this.stats.restarts++;
    this.trace(`process ${index} restarts (${why})`);
  }

  #attribute(error: unknown, procIndex: number): void {
    if (isInjectedFault(error)) this.#faultProc.set(Number(error.extra.faultId), procIndex);
  }

  // -------------------------------------------------------------------------
  // Factories
  // -------------------------------------------------------------------------

  #addFactory(caps?: readonly string[]): Factory {
    const n = this.#factorySeq++;
    const f: Factory = {
      id: `f${n}`,
      caps: caps ?? (CAPS[n % CAPS.length] as readonly string[]),
      status: 'alive',
      held: new Map(),
    };
    this.factories.push(f);
    return f;
  }

  #alive(): Factory[] {
    return this.factories.filter((f) => f.status === 'alive');
  }

  // -------------------------------------------------------------------------
  // Calls: every request goes through `exec`, which checks what a call must do
  // -------------------------------------------------------------------------

  #remember(req: Req): void {
    this.sent.push(req);
    if (this.sent.length > 64) this.sent.shift();
  }

  async #invoke(req: Req, coord: Coordinator): Promise<Result<unknown>> {
    switch (req.kind) {
      case 'submit':
        return coord.submit(req.productId, req.input);
      case 'claim':
        return coord.claimNextJob(req.productId, {
          factoryId: req.factoryId,
          capabilities: [...req.caps],
        });
      case 'transition':
        return coord.transition(req.productId, req.jobId, req.input);
      case 'progress':
        return coord.recordProgress(req.productId, req.jobId, req.input);
      case 'renew':
        return coord.renewLease(req.productId, req.jobId, req.input);
      case 'release':
        return coord.releaseLease(req.productId, req.jobId, req.input);
      case 'cancel':
        return coord.cancel(req.productId, req.jobId, 'sim', 'admin', {
          ...(req.ifMatch ? { ifMatch: req.ifMatch } : {}),
        });
      case 'requeue':
        return coord.requeue(req.productId, req.jobId, 'admin', {
          ...(req.ifMatch ? { ifMatch: req.ifMatch } : {}),
        });
    }
  }

  /**
   * Runs one request in a process. Alone (not in a `par` group) it also checks:
   * - a call answered with an error Result, or a submit answered `existing`, changed
   *   nothing of its job (document, events, runs, lease, artifacts: stored + pending),
   *   except the one documented exception (a worker call on a job past its wall budget
   *   sends it to dead_letter and is FENCED);
   * - a worker call from anyone but the holder at the job's epoch is FENCED, and the
   *   holder at its epoch is never FENCED (but for that wall budget);
   * - a claim hands out a fresh epoch, above every earlier one of that job.
   * Returns the Result, or the thrown error (only injected store faults may throw).
   */
  async exec(req: Req, proc: Proc): Promise<{ r?: Result<unknown>; thrown?: unknown }> {
    const alone = !this.#concurrent;
    const target =
      req.kind === 'claim'
        ? null
        : req.kind === 'submit'
          ? { productId: req.productId, jobId: jobIdFor(req.productId, req.input.idempotencyKey) }
          : { productId: req.productId, jobId: req.jobId };
    let before: Awaited<ReturnType<typeof logicalJob>> | undefined;
    let pre: JobDoc | null = null;
    let seatLimit: number | null = null;
    if (alone && target) {
      pre = await this.inner.jobs.read(target.productId, target.jobId);
      before = await logicalJob(this.inner, target.productId, target.jobId);
    }
    if (alone && req.kind === 'claim') {
      seatLimit =
        (await this.inner.factories.read(req.productId, req.factoryId))?.seatLimit ?? null;
    }
    let r: Result<unknown>;
    try {
      r = await this.#invoke(req, proc.coord);
    } catch (e) {
      this.#attribute(e, proc.index);
      if (!isInjectedFault(e)) {
        this.checker.violation(`${req.kind} threw a non-injected error: ${describeErr(e)}`);
      }
      return { thrown: e };
    }
    const answer = `${req.kind}:${
      r.ok
        ? req.kind === 'submit'
          ? (r.value as { outcome: string }).outcome
          : req.kind === 'claim' && r.value === null
            ? 'none'
            : 'ok'
        : r.error.code
    }`;
    this.stats.results[answer] = (this.stats.results[answer] ?? 0) + 1;
    if (alone && target && before !== undefined) {
      const isNoop =
        !r.ok || (req.kind === 'submit' && (r.value as { outcome: string }).outcome === 'existing');
      if (isNoop) {
        const after = await logicalJob(this.inner, target.productId, target.jobId);
        const diff = noopDiff(before, after, !r.ok && r.error.code === 'FENCED');
        this.stats.assertions++;
        if (diff !== null) {
          this.checker.violation(
            `${req.kind} on ${this.label(target.jobId)} answered ${r.ok ? 'existing' : r.error.code} but changed the job: ${diff}`,
          );
        } else this.stats.rejectedNoops++;
      }
    }
    if (alone && pre && WORKER_KINDS.has(req.kind)) {
      const input = (req as { input: { factoryId: string; leaseEpoch: number } }).input;
      const holds = pre.holderFactoryId === input.factoryId && pre.leaseEpoch === input.leaseEpoch;
      this.stats.assertions++;
      if (!holds) {
        if (r.ok) {
          this.checker.violation(
            `${req.kind} from ${input.factoryId}@${input.leaseEpoch} on ${this.label(pre.id)} (held by ${pre.holderFactoryId ?? 'nobody'}@${pre.leaseEpoch}) was accepted`,
          );
        } else if (r.error.code !== 'FENCED') {
          this.checker.violation(
            `${req.kind} from non-holder ${input.factoryId}@${input.leaseEpoch} on ${this.label(pre.id)} answered ${r.error.code}, not FENCED`,
          );
        } else {
          this.stats.zombieWritesFenced++;
          if (this.#resumed.has(input.factoryId)) this.stats.resumedZombiesFenced++;
        }
      } else if (!r.ok && r.error.code === 'FENCED') {
        const now = await this.inner.jobs.read(pre.productId, pre.id);
        if (!(now?.stage === 'dead_letter' && now.deadReason === 'budget_exceeded')) {
          this.checker.violation(
            `${req.kind} from the holder ${input.factoryId}@${input.leaseEpoch} on ${this.label(pre.id)} was FENCED: ${r.error.detail}`,
          );
        }
      }
    }
    if (req.kind === 'claim' && r.ok && r.value !== null) {
      const grant = r.value as ClaimGrant;
      this.stats.grants++;
      this.know(req.productId, grant.job.id);
      this.checker.granted(grant, req.factoryId);
      if (alone && seatLimit !== null) {
        const held = await this.inner.jobs.countHeld(req.productId, req.factoryId);
        this.stats.assertions++;
        if (held > seatLimit)
          this.checker.violation(`${req.factoryId} holds ${held} jobs, seat limit ${seatLimit}`);
      }
    }
    if (req.kind === 'submit' && r.ok) {
      const job = (r.value as { job: JobDoc }).job;
      this.know(req.productId, job.id, req.input.idempotencyKey);
    }
    return { r };
  }

  // -------------------------------------------------------------------------
  // Steps
  // -------------------------------------------------------------------------

  #proc(x: number, forced?: number): Proc {
    return this.procs[(forced ?? x) % this.procs.length] as Proc;
  }

  async runStep(cmd: Cmd, forcedProc?: number): Promise<void> {
    const op = opOf(cmd);
    const [, a, b, c] = cmd;
    this.stats.ops[op] = (this.stats.ops[op] ?? 0) + 1;
    switch (op) {
      case 'tick': {
        // Mostly short; one tick in eight outlasts every lease.
        const dt = [1_000, 1_000, 2_000, 5_000, 5_000, 10_000, 15_000, this.opts.leaseMs + 1][
          a % 8
        ] as number;
        this.clock.advance(dt);
        const fired = this.timers.fireDue();
        this.trace(`tick +${dt}ms${fired > 0 ? ` (supervisor sweep ×${fired})` : ''}`);
        await this.supervisorSettled();
        return;
      }
      case 'jump': {
        if (a % 3 === 0) {
          const back = ((b % 20) + 1) * 1000;
          this.clock.set(this.clock.now() - back);
          this.trace(`clock jumps back ${back}ms`);
        } else {
          const fwd = this.opts.leaseMs * 2 + (b % 10) * 30_000;
          this.clock.advance(fwd);
          this.trace(`clock jumps forward ${fwd}ms`);
          this.timers.fireDue();
          await this.supervisorSettled();
        }
        return;
      }
      case 'submit':
        return this.#submit(a, b, c, forcedProc);
      case 'claim':
        return this.#claim(a, b, c, forcedProc);
      case 'work':
        return this.#work(a, b, c, forcedProc);
      case 'renew':
        return this.#renew(a, b, forcedProc);
      case 'sweep':
        return this.#sweep(a, b, forcedProc);
      case 'kill': {
        const alive = this.#alive();
        const f = alive[a % Math.max(1, alive.length)];
        if (!f) return;
        f.status = 'dead';
        f.held.clear();
        const g = this.#addFactory(f.caps);
        this.trace(`${f.id} dies; ${g.id} joins`);
        return;
      }
      case 'pause': {
        const alive = this.#alive();
        const f = alive[a % Math.max(1, alive.length)];
        if (!f || alive.length < 2) return;
        f.status = 'paused';
        this.trace(
          `${f.id} pauses holding ${[...f.held.values()].map((h) => `${this.label(h.jobId)}@${h.epoch}`).join(',') || 'nothing'}`,
        );
        return;
      }
      case 'resume': {
        const paused = this.factories.filter((f) => f.status === 'paused');
        const f = paused[a % Math.max(1, paused.length)];
        if (!f) return;
        f.status = 'alive';
        this.#resumed.add(f.id);
        this.trace(`${f.id} resumes`);
        return;
      }
      case 'replay':
        return this.#replay(a, b, forcedProc);
      case 'fault': {
        const [container, method] = FAULT_POINTS[a % FAULT_POINTS.length] as readonly [
          ContainerName,
          string,
        ];
        let when = (['before', 'after', 'late'] as const)[b % 3] as FaultWhen;
        if (container === 'events' && method === 'append' && !this.opts.unknownAppendOutcomes)
          when = 'before';
        this.store.failNext(container, method, { when, skip: c % 3 });
        this.stats.faultsArmed++;
        this.trace(`arm fault ${when} ${container}.${method} (skip ${c % 3})`);
        return;
      }
      case 'crash': {
        if (b % 4 === 3) {
          await this.restart(a % this.procs.length, 'clean restart');
          return;
        }
        const [container, method, skip] = CRASH_POINTS[a % CRASH_POINTS.length] as readonly [
          ContainerName,
          string,
          number,
        ];
        const when = b % 2 === 0 ? 'before' : 'after';
        this.store.failNext(container, method, { when, skip, tag: 'crash' });
        this.stats.faultsArmed++;
        this.trace(`arm crash ${when} ${container}.${method} (skip ${skip})`);
        return;
      }
      case 'outage': {
        this.store.setOutage(a % 2 === 0 ? 'writes' : 'all');
        this.#outageSteps = 2; // this step and the next
        this.trace(`store outage (${a % 2 === 0 ? 'writes' : 'all'}) for the next step`);
        return;
      }
      case 'land': {
        const n = await this.store.applyLate();
        this.stats.lateLanded += n;
        this.trace(`${n} late write(s) land`);
        return;
      }
      case 'admin':
        return this.#admin(a, b, forcedProc);
      case 'read':
        return this.#read(a, b, forcedProc);
      case 'heartbeat': {
        const alive = this.#alive();
        const f = alive[a % Math.max(1, alive.length)];
        if (!f) return;
        const productId = PRODUCTS[b % 2] as string;
        const seatLimit = [null, 1, 2][c % 3] ?? null;
        try {
          await this.#proc(b >> 1, forcedProc).coord.heartbeat(productId, {
            factoryId: f.id,
            capabilities: [...f.caps],
            health: 'ok',
            seatLimit,
          });
          this.trace(`${f.id} heartbeat ${productId} seatLimit ${seatLimit}`);
        } catch (e) {
          this.#attribute(e, this.#proc(b >> 1, forcedProc).index);
          if (!isInjectedFault(e)) this.checker.violation(`heartbeat threw ${describeErr(e)}`);
        }
        return;
      }
      case 'par':
        return; // handled by run()
    }
  }

  #submitInput(productId: string, a: number, b: number, c: number): SubmitInput {
    const key = `k${(a >> 1) % 8}`;
    const v = b % 4;
    const pool = this.jobsOf.get(productId) ?? [];
    const deps: string[] = [];
    if (c % 4 >= 2 && pool.length > 0) {
      deps.push(pool[(c >> 2) % pool.length] as string);
      if (c % 4 === 3) deps.push(pool[(c >> 5) % pool.length] as string);
    }
    if (c % 64 === 63) deps.push('job_unknown');
    return {
      idempotencyKey: key,
      bodyMd: `work on ${key}, variant ${v}`,
      priority: PRIORITIES[v % PRIORITIES.length] as Priority,
      capabilities: v === 2 ? ['py'] : v === 3 ? ['ts'] : [],
      deps,
      depsMode: (c >> 8) % 2 === 1 ? 'soft' : 'hard',
      retry: {
        max: 1 + (v % 3),
        backoff: v % 2 === 1 ? 'fixed' : 'exponential',
        delayMs: 2_000,
        maxDelayMs: 20_000,
        on: ['transient'],
      },
      ...(v === 1 ? { budget: { tokens: 400 } } : v === 3 ? { budget: { wall: 'PT3M' } } : {}),
    };
  }

  async #submit(a: number, b: number, c: number, forced?: number): Promise<void> {
    const productId = PRODUCTS[a % 2] as string;
    const input = this.#submitInput(productId, a, b, c);
    this.labels.set(
      jobIdFor(productId, input.idempotencyKey),
      `${productId}/${input.idempotencyKey}`,
    );
    const req: Req = { kind: 'submit', productId, input };
    this.#remember(req);
    const { r, thrown } = await this.exec(req, this.#proc(b >> 2, forced));
    const what = `submit ${productId}/${input.idempotencyKey} v${b % 4} deps[${(input.deps ?? []).map((d) => this.label(d)).join(',')}]`;
    if (thrown) this.trace(`${what} → threw ${describeErr(thrown)}`);
    else if (r?.ok) {
      const v = r.value as { job: JobDoc; outcome: string };
      this.trace(`${what} → ${v.outcome} (${v.job.stage})`);
    } else if (r) this.trace(`${what} → ${r.error.code}`);
  }

  #adopt(f: Factory, grant: ClaimGrant, productId: string): void {
    f.held.set(grant.job.id, {
      productId,
      jobId: grant.job.id,
      epoch: grant.lease.leaseEpoch,
      stage: grant.job.stage,
    });
  }

  async #claim(a: number, b: number, c: number, forced?: number): Promise<void> {
    const alive = this.#alive();
    const f = alive[a % Math.max(1, alive.length)];
    if (!f) return;
    const productId = PRODUCTS[b % 2] as string;
    const req: Req = { kind: 'claim', productId, factoryId: f.id, caps: f.caps };
    this.#remember(req);
    const { r, thrown } = await this.exec(req, this.#proc(b >> 1, forced));
    const lost = c % 8 === 7;
    if (thrown) {
      this.trace(`${f.id} claims ${productId} → threw ${describeErr(thrown)}`);
      return;
    }
    if (!r?.ok) {
      this.checker.violation(`claim answered ${codeOf(r)}`);
      return;
    }
    const grant = r.value as ClaimGrant | null;
    if (!grant) {
      this.trace(`${f.id} claims ${productId} → nothing`);
      return;
    }
    if (!lost) this.#adopt(f, grant, productId);
    this.trace(
      `${f.id} claims ${productId} → ${this.label(grant.job.id)}@${grant.lease.leaseEpoch}${lost ? ' (reply lost)' : ''}`,
    );
  }

  /** What a factory does with one held job, by `c`; the belief is updated from the answer. */
  async #work(a: number, b: number, c: number, forced?: number): Promise<void> {
    const alive = this.#alive().filter((f) => f.held.size > 0);
    const f = alive[a % Math.max(1, alive.length)];
    if (!f) return;
    const beliefs = [...f.held.values()];
    const h = beliefs[b % beliefs.length] as Belief;
    const who = { factoryId: f.id, leaseEpoch: h.epoch };
    const action = c % 16;
    const lost = (c >> 4) % 8 === 7;
    const insights = { tokensIn: 150, tokensOut: 50, costUsd: 0.35, turns: 1, model: 'sim' };
    let req: Req;
    let what: string;
    const next = NEXT[h.stage] ?? 'building';
    if (action <= 8 || action === 15) {
      req = {
        kind: 'transition',
        productId: h.productId,
        jobId: h.jobId,
        input: {
          ...who,
          to: next,
          ...(action === 15 ? { insights, checkpoint: { wipCommit: `c${b}` } } : {}),
          ...(next === 'shipped' ? { result: { ok: true } } : {}),
        },
      };
      what = `→ ${next}`;
    } else if (action === 9 || action === 10) {
      const cls = action === 9 ? 'transient' : 'fatal';
      req = {
        kind: 'transition',
        productId: h.productId,
        jobId: h.jobId,
        input: { ...who, to: 'failed', error: { class: cls, message: 'sim failure' } },
      };
      what = `→ failed (${cls})`;
    } else if (action === 11) {
      req = {
        kind: 'release',
        productId: h.productId,
        jobId: h.jobId,
        input: { ...who, reason: 'sim' },
      };
      what = 'release';
    } else if (action === 12 || action === 13) {
      req = {
        kind: 'progress',
        productId: h.productId,
        jobId: h.jobId,
        input: {
          ...who,
          insights,
          ...(action === 13
            ? { artifacts: [{ name: `log-${b % 3}`, uri: `blob://sim/${h.jobId}/${b % 3}` }] }
            : { checkpoint: { wipBranch: `wip/${b % 5}` } }),
        },
      };
      what = action === 13 ? 'progress + artifact' : 'progress + checkpoint';
    } else {
      const to = h.stage === 'review' || h.stage === 'testing' ? 'building' : next;
      req = {
        kind: 'transition',
        productId: h.productId,
        jobId: h.jobId,
        input: { ...who, to },
      };
      what = `→ ${to}`;
    }
    this.#remember(req);
    const { r, thrown } = await this.exec(req, this.#proc(b >> 1, forced));
    const head = `${f.id} ${this.label(h.jobId)}@${h.epoch} ${what}`;
    if (thrown) {
      this.trace(`${head} → threw ${describeErr(thrown)}`);
      return;
    }
    if (!r) return;
    if (lost) {
      this.trace(`${head} → ${r.ok ? 'ok' : r.error.code} (reply lost)`);
      return;
    }
    if (r.ok) {
      const job = r.value as JobDoc;
      if (job.holderFactoryId === f.id && job.leaseEpoch === h.epoch) h.stage = job.stage;
      else f.held.delete(h.jobId);
      this.trace(`${head} → ok (${job.stage})`);
      return;
    }
    this.trace(`${head} → ${r.error.code}`);
    if (r.error.code === 'FENCED') f.held.delete(h.jobId);
    else await this.#resync(f, h);
  }

  /** An honest factory that was told INVALID_TRANSITION looks the job up. */
  async #resync(f: Factory, h: Belief): Promise<void> {
    const job = await this.inner.jobs.read(h.productId, h.jobId);
    if (job && job.holderFactoryId === f.id && job.leaseEpoch === h.epoch) h.stage = job.stage;
    else f.held.delete(h.jobId);
  }

  async #renew(a: number, b: number, forced?: number): Promise<void> {
    const alive = this.#alive().filter((f) => f.held.size > 0);
    const f = alive[a % Math.max(1, alive.length)];
    if (!f) return;
    const beliefs = [...f.held.values()];
    const h = beliefs[b % beliefs.length] as Belief;
    const req: Req = {
      kind: 'renew',
      productId: h.productId,
      jobId: h.jobId,
      input: { factoryId: f.id, leaseEpoch: h.epoch, ...(b % 3 === 2 ? { extendMs: 5_000 } : {}) },
    };
    this.#remember(req);
    const { r, thrown } = await this.exec(req, this.#proc(b >> 1, forced));
    const head = `${f.id} renews ${this.label(h.jobId)}@${h.epoch}`;
    if (thrown) this.trace(`${head} → threw ${describeErr(thrown)}`);
    else if (r?.ok) this.trace(`${head} → ok`);
    else if (r) {
      this.trace(`${head} → ${r.error.code}`);
      if (r.error.code === 'FENCED') f.held.delete(h.jobId);
    }
  }

  async #sweep(a: number, b: number, forced?: number): Promise<void> {
    const kind = a % 4;
    if (kind <= 1 && forced === undefined) {
      const outcome = await this.supervisor.sweepNow().catch((e: unknown) => ({
        phase: 'failed' as const,
        error: e,
        durationMs: 0,
      }));
      if (outcome.phase === 'failed') {
        this.#attribute(outcome.error, this.supervisorProc.index);
        if (!isInjectedFault(outcome.error))
          this.checker.violation(`supervisor sweep failed: ${describeErr(outcome.error)}`);
        this.trace(`supervisor sweep → failed ${describeErr(outcome.error)}`);
      } else {
        const r = outcome.report;
        this.trace(
          `supervisor sweep → reaped ${r.reaped}, retried ${r.retried}, budget ${r.budgetExceeded}, repaired ${r.repaired}, unblocked ${r.unblocked}`,
        );
      }
      return;
    }
    // Another process sweeps too (every process may): a direct sweep, reap or retry pass.
    const proc = this.#proc(b, forced);
    try {
      if (kind === 2) {
        const n = await proc.coord.reapExpiredLeases();
        this.trace(`process ${proc.index} reaps → ${n}`);
      } else if (kind === 3 && b % 2 === 0) {
        const n = await proc.coord.retryDue();
        this.trace(`process ${proc.index} retries due → ${n}`);
      } else {
        const r = await proc.coord.sweep();
        this.trace(`process ${proc.index} sweeps → reaped ${r.reaped}, retried ${r.retried}`);
      }
    } catch (e) {
      this.#attribute(e, proc.index);
      if (!isInjectedFault(e)) this.checker.violation(`sweep threw ${describeErr(e)}`);
      this.trace(`process ${proc.index} sweep → threw ${describeErr(e)}`);
    }
  }

  /** A late or duplicated delivery of an earlier request (its answer goes nowhere). */
  async #replay(a: number, b: number, forced?: number): Promise<void> {
    if (this.sent.length === 0) return;
    const req = this.sent[this.sent.length - 1 - (a % this.sent.length)] as Req;
    const { r, thrown } = await this.exec(req, this.#proc(b, forced));
    let what: string = req.kind;
    if ('jobId' in req) what += ` ${this.label(req.jobId)}`;
    if ('input' in req && 'leaseEpoch' in req.input)
      what += ` from ${req.input.factoryId}@${req.input.leaseEpoch}`;
    if (req.kind === 'claim') what += ` for ${req.factoryId}`;
    if (thrown) this.trace(`late/duplicate ${what} → threw ${describeErr(thrown)}`);
    else if (r?.ok) {
      if (req.kind === 'claim' && r.value !== null) {
        const grant = r.value as ClaimGrant;
        // The late answer reaches the factory if it is still there to hear it.
        const f = this.factories.find((x) => x.id === req.factoryId && x.status === 'alive');
        if (f && b % 2 === 0) this.#adopt(f, grant, req.productId);
        what += ` → ${this.label(grant.job.id)}@${grant.lease.leaseEpoch}`;
      }
      this.trace(`late/duplicate ${what} → ok`);
    } else if (r) this.trace(`late/duplicate ${what} → ${r.error.code}`);
  }

  async #admin(a: number, b: number, forced?: number): Promise<void> {
    const jobs = this.allKnownJobs();
    const j = jobs[a % Math.max(1, jobs.length)];
    if (!j) return;
    const kind = b % 4;
    const ifMatch = kind === 2 ? '"stale-etag"' : undefined;
    const req: Req =
      kind === 1 || kind === 3
        ? { kind: 'requeue', ...j, ...(ifMatch ? { ifMatch } : {}) }
        : { kind: 'cancel', ...j, ...(ifMatch ? { ifMatch } : {}) };
    this.#remember(req);
    const { r, thrown } = await this.exec(req, this.#proc(b >> 2, forced));
    const what = `admin ${req.kind}${ifMatch ? ' (stale If-Match)' : ''} ${this.label(j.jobId)}`;
    if (thrown) this.trace(`${what} → threw ${describeErr(thrown)}`);
    else if (r?.ok) this.trace(`${what} → ok (${(r.value as JobDoc).stage})`);
    else if (r) this.trace(`${what} → ${r.error.code}`);
  }

  async #read(a: number, b: number, forced?: number): Promise<void> {
    const jobs = this.allKnownJobs();
    const j = jobs[a % Math.max(1, jobs.length)];
    if (!j) return;
    const proc = this.#proc(b >> 1, forced);
    try {
      if (b % 2 === 0) {
        const r = await proc.coord.listEvents(j.productId, j.jobId, { limit: 1000 });
        if (!r.ok) this.checker.violation(`listEvents answered ${r.error.code}`);
        else {
          this.stats.assertions++;
          const seqs = r.value.items.map((e) => e.seq);
          if (seqs.some((s, i) => s !== i + 1))
            this.checker.violation(
              `listEvents of ${this.label(j.jobId)} is not 1..n: [${seqs.join(',')}]`,
            );
        }
        this.trace(`read events of ${this.label(j.jobId)}`);
      } else {
        const r = await proc.coord.getJob(j.productId, j.jobId);
        if (!r.ok) this.checker.violation(`getJob of a submitted job answered ${r.error.code}`);
        this.trace(`read ${this.label(j.jobId)}`);
      }
    } catch (e) {
      this.#attribute(e, proc.index);
      if (!isInjectedFault(e)) this.checker.violation(`read threw ${describeErr(e)}`);
      this.trace(`read ${this.label(j.jobId)} → threw ${describeErr(e)}`);
    }
  }

  // -------------------------------------------------------------------------
  // The run
  // -------------------------------------------------------------------------

  /** After a step: crashes that fired restart their process; the outage ends. */
  async #afterStep(): Promise<void> {
    await this.supervisorSettled();
    const fired = this.#firedThisStep;
    this.#firedThisStep = [];
    const crashed = new Set<number>();
    for (const f of fired) {
      if (f.tag !== 'crash') continue;
      const proc = this.#faultProc.get(f.id);
      if (proc === undefined) {
        this.checker.violation(`crash fault ${f.container}.${f.method} fired but no call failed`);
        continue;
      }
      crashed.add(proc);
    }
    for (const f of fired) {
      const proc = this.#faultProc.get(f.id);
      if (proc !== undefined) this.checker.unknownAppendBy(f.id, proc);
    }
    for (const proc of [...crashed].sort()) {
      this.stats.crashes++;
      await this.restart(proc, 'crashed');
    }
    if (this.#outageSteps > 0 && --this.#outageSteps === 0) this.store.setOutage(null);
  }

  async run(cmds: readonly Cmd[]): Promise<void> {
    for (let i = 0; i < cmds.length; i++) {
      this.#step = i;
      const cmd = cmds[i] as Cmd;
      if (opOf(cmd) === 'par') {
        const k = 2 + (cmd[1] % 2);
        const group = cmds.slice(i + 1, i + 1 + k).filter((x) => opOf(x) !== 'par');
        this.stats.ops.par = (this.stats.ops.par ?? 0) + 1;
        this.trace(`in parallel: ${group.map((x) => opOf(x)).join(', ')}`);
        this.#concurrent = true;
        try {
          await Promise.all(group.map((x, j) => this.runStep(x, j)));
        } finally {
          this.#concurrent = false;
        }
        i += k;
      } else {
        await this.runStep(cmd);
      }
      this.stats.steps++;
      await this.#afterStep();
      await this.checker.check();
      if (this.checker.violations.length > 0) return;
    }
  }

  /**
   * Liveness: faults off (late writes land first), paused factories never come back, and
   * an honest factory with every capability works. Each round: a supervisor sweep, the
   * honest factories claim and ship everything they can, then the clock moves to the
   * next due time. Every job must end shipped or dead_letter within the rounds.
   */
  async liveness(): Promise<void> {
    this.#step = -1;
    this.store.setOutage(null);
    this.store.disarm();
    this.stats.lateLanded += await this.store.applyLate();
    for (const f of this.factories) if (f.status === 'paused') f.status = 'dead';
    const closer = this.#addFactory(['py', 'ts']);
    for (let round = 0; round < this.opts.livenessRounds; round++) {
      this.stats.livenessRounds = round + 1;
      const outcome = await this.supervisor.sweepNow();
      if (outcome.phase === 'failed')
        this.checker.violation(
          `liveness: a sweep failed without faults: ${describeErr(outcome.error)}`,
        );
      // Every process runs a supervisor in production (`fleet serve`): the others sweep too.
      for (const proc of this.procs) {
        if (proc === this.supervisorProc) continue;
        try {
          await proc.coord.sweep();
        } catch (e) {
          this.checker.violation(`liveness: a sweep failed without faults: ${describeErr(e)}`);
        }
      }
      // Honest factories finish what they hold (stale beliefs get FENCED and are dropped).
      for (const f of this.#alive()) {
        for (const h of [...f.held.values()]) await this.#finish(f, h, false);
      }
      for (const productId of PRODUCTS) {
        for (let n = 0; n < 200; n++) {
          const req: Req = { kind: 'claim', productId, factoryId: closer.id, caps: closer.caps };
          const { r, thrown } = await this.exec(req, this.#proc(n));
          if (thrown || !r?.ok) {
            this.checker.violation(
              `liveness: claim failed: ${thrown ? describeErr(thrown) : codeOf(r)}`,
            );
            break;
          }
          const grant = r.value as ClaimGrant | null;
          if (!grant) break;
          this.#adopt(closer, grant, productId);
          const h = closer.held.get(grant.job.id) as Belief;
          await this.#finish(closer, h, true);
        }
      }
      await this.#afterStep();
      await this.checker.check();
      if (this.checker.violations.length > 0) return;
      const jobs = await this.checker.jobs();
      const open = jobs.filter((j) => !TERMINAL.has(j.stage));
      if (open.length === 0) {
        this.trace(`liveness: every job terminal after ${round + 1} round(s)`);
        await this.checker.final();
        return;
      }
      // Move to the next time something is due (a lease, a retry, a wall budget).
      let next = Number.POSITIVE_INFINITY;
      for (const j of open) {
        if (j.dueAt !== null) next = Math.min(next, ms(j.dueAt));
        if (j.notBefore !== null) next = Math.min(next, ms(j.notBefore));
      }
      const target = Number.isFinite(next) ? next + 1 : this.clock.now() + this.opts.leaseMs + 1;
      this.clock.set(Math.max(this.clock.now() + 1, target));
      this.trace(
        `liveness round ${round + 1}: ${open.length} open (${open.map((j) => `${this.label(j.id)}:${j.stage}`).join(' ')})`,
      );
      this.timers.fireDue();
      await this.supervisorSettled();
    }
    const open = (await this.checker.jobs()).filter((j) => !TERMINAL.has(j.stage));
    for (const j of open) {
      this.checker.violation(
        `liveness: ${this.label(j.id)} is still ${j.stage} after ${this.opts.livenessRounds} rounds with faults off`,
      );
    }
  }

  /** Drives a held job to shipped; an honest `strict` factory must never be refused. */
  async #finish(f: Factory, h: Belief, strict: boolean): Promise<void> {
    for (let n = 0; n < 6 && f.held.has(h.jobId); n++) {
      const to = NEXT[h.stage];
      if (!to) {
        f.held.delete(h.jobId);
        return;
      }
      const req: Req = {
        kind: 'transition',
        productId: h.productId,
        jobId: h.jobId,
        input: { factoryId: f.id, leaseEpoch: h.epoch, to },
      };
      const { r, thrown } = await this.exec(req, this.#proc(n));
      if (thrown || !r?.ok) {
        const why = thrown ? describeErr(thrown) : codeOf(r);
        if (strict) {
          const job = await this.inner.jobs.read(h.productId, h.jobId);
          // The one legitimate refusal: the job's wall budget ran out meanwhile.
          if (!(job?.stage === 'dead_letter' && job.deadReason === 'budget_exceeded'))
            this.checker.violation(
              `liveness: honest ${f.id} was refused ${to} on ${this.label(h.jobId)}: ${why}`,
            );
        }
        f.held.delete(h.jobId);
        return;
      }
      const job = r.value as JobDoc;
      h.stage = job.stage;
      if (TERMINAL.has(job.stage) || job.holderFactoryId !== f.id) f.held.delete(h.jobId);
    }
  }

  async close(): Promise<void> {
    await this.supervisor.stop();
    for (const p of this.procs) await p.coord.drain();
    await this.inner.close();
  }
}

/** Runs one schedule to the end (then the liveness phase); returns what was found. */
export async function simulate(schedule: Schedule, options: SimOptions): Promise<SimResult> {
  const inner = await openStore(options.store);
  const world = new World(inner, schedule, options);
  let failedStep: number | null = null;
  try {
    await world.checker.check();
    await world.run(schedule.cmds);
    if (world.checker.violations.length > 0) failedStep = world.step;
    else {
      await world.liveness();
      if (world.checker.violations.length > 0) failedStep = -1;
    }
  } catch (e) {
    world.checker.violation(`the simulator itself failed at step ${world.step}: ${describeErr(e)}`);
    failedStep = world.step;
  } finally {
    const jobs = await world.checker.jobs().catch(() => [] as JobDoc[]);
    world.stats.jobs = jobs.length;
    world.stats.shipped = jobs.filter((j) => j.stage === 'shipped').length;
    world.stats.deadLetter = jobs.filter((j) => j.stage === 'dead_letter').length;
    for (const j of jobs) {
      if (j.stage === 'dead_letter') {
        const why = j.deadReason ?? 'unknown';
        world.stats.deadReasons[why] = (world.stats.deadReasons[why] ?? 0) + 1;
      }
    }
    await world.close().catch(() => {});
  }
  return { violations: world.checker.violations, failedStep, stats: world.stats };
}
