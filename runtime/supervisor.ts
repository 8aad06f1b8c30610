/**
 * The supervisor: runs the coordinator's sweep (expired leases reaped, due retries moved
 * back to `queued`, wall budgets enforced, outboxes repaired, dependents unblocked) and
 * the stale-factory check on a jittered interval, as an actor of `supervisorMachine`.
 *
 * Safe to run in every process: every write a sweep makes is etag-guarded and
 * idempotent (two supervisors racing on one job: one wins, the other re-reads and finds
 * nothing to do). Never two sweeps at once within one supervisor; a failing sweep is
 * reported and the loop goes on.
 *
 * Stale factories: a factory is stale when it missed three heartbeats
 * (`Coordinator.isStale`). Staleness is derived at read time (`listFactories` answers
 * `stale: true`), so there is nothing to write; the supervisor counts the stale
 * factories of every product (`Coordinator.listStaleFactories`, one store query across
 * products per page) in its report and logs each factory when it turns stale.
 */
import { createActor, fromPromise, toPromise } from 'xstate';
import { jitteredDelay, type SupervisorSweepOutput, supervisorMachine } from '../machines/index.js';
import { type Clock, systemClock } from './clock.js';
import type { Coordinator, SweepReport } from './coordinator.js';

/** The counts of one supervisor sweep: the coordinator's, plus the stale-factory check. */
export interface SupervisorReport extends SweepReport {
  /** Factories of every product that missed three heartbeats, at sweep time. */
  staleFactories: number;
}

/** How a sweep ended. */
export type SweepOutcome =
  | { phase: 'succeeded'; report: SupervisorReport; durationMs: number }
  | { phase: 'failed'; error: unknown; durationMs: number };

/** Schedules delayed callbacks; xstate's `SimulatedClock` is one, so are the real timers. */
export interface TimerClock {
  setTimeout(fn: () => void, timeoutMs: number): unknown;
  clearTimeout(id: unknown): void;
}

/** What the supervisor reports about each sweep, in order: started, then its outcome. */
export type SupervisorEvent = { phase: 'started' } | SweepOutcome;

/** A pino-compatible logger (`app.log.child(...)` fits). */
export interface SupervisorLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** The part of the coordinator the supervisor uses (tests pass an object literal). */
export type SupervisedCoordinator = Pick<Coordinator, 'sweep' | 'listStaleFactories'> & {
  clock?: Clock;
};

export interface SupervisorOptions {
  coordinator: SupervisedCoordinator;
  /** The time a sweep runs "at" (leases expired by then are reaped). @defaultValue `coordinator.clock` */
  clock?: Clock;
  /**
   * Schedules the waits between sweeps (`setTimeout`/`clearTimeout`). Tests pass xstate's
   * `SimulatedClock` (which is also a {@link Clock}). @defaultValue the real timers
   */
  timers?: TimerClock;
  /** Mean wait between the end of a sweep and the start of the next, in ms (integer ≥ 1). */
  intervalMs: number;
  /** Relative spread of that wait, in [0, 1]: 0.2 means ±20 %. @defaultValue 0.2 */
  jitter?: number;
  /** Jitter source in [0, 1). @defaultValue Math.random */
  random?: () => number;
  /** Called with every report (metrics); a throwing listener is logged and ignored. */
  onReport?: (event: SupervisorEvent) => void;
  /**
   * Sweeps are logged: started at debug, succeeded at info when they changed something
   * (debug otherwise), failed at error. @defaultValue silent
   */
  logger?: SupervisorLogger;
}

export interface Supervisor {
  /**
   * Runs a sweep as soon as none is running (at once when idle; right after the running
   * one otherwise, so the sweep reflects everything that happened before the call) and
   * resolves with its outcome. A failed sweep resolves with `phase: 'failed'`. Rejects
   * when the supervisor is stopped before that sweep could start.
   */
  sweepNow(): Promise<SweepOutcome>;
  /** Stops the loop; resolves once the running sweep (if any) settled. Idempotent. */
  stop(): Promise<void>;
  /** Sweeps that settled so far, and how many of them failed. */
  readonly stats: { sweeps: number; failures: number; consecutiveFailures: number };
}

/** A sweep's failure, carrying how long it ran. */
class SweepFailure extends Error {
  readonly durationMs: number;
  constructor(cause: unknown, durationMs: number) {
    super('sweep failed', { cause });
    this.name = 'SweepFailure';
    this.durationMs = durationMs;
  }
}

const silent: SupervisorLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** Factories listed per request of the stale check. */
const FACTORY_PAGE = 500;

function errorInfo(error: unknown): object {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { err: { type: error.name, message: error.message, ...(code ? { code } : {}) } };
  }
  return { err: { message: String(error) } };
}

function changedSomething(report: SupervisorReport): boolean {
  return (
    report.reaped +
      report.retried +
      report.budgetExceeded +
      report.repaired +
      report.unblocked +
      report.pruned >
    0
  );
}

/**
 * Starts a supervisor on `coordinator`. The first sweep runs one (jittered) interval
 * after the start, or at once on `sweepNow()`.
 *
 * @throws RangeError when `intervalMs` is not an integer ≥ 1 or `jitter` is outside [0, 1].
 */
export function startSupervisor(options: SupervisorOptions): Supervisor {
  const { coordinator, intervalMs } = options;
  const jitter = options.jitter ?? 0.2;
  if (!Number.isInteger(intervalMs) || intervalMs < 1) {
    throw new RangeError(`intervalMs must be an integer ≥ 1, got ${intervalMs}`);
  }
  if (!(jitter >= 0 && jitter <= 1)) {
    throw new RangeError(`jitter must be in [0, 1], got ${jitter}`);
  }
  const clock = options.clock ?? coordinator.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const log = options.logger ?? silent;
  /** Factories found stale by the last check (`product\0factory`), to log each turn once. */
  let stale = new Set<string>();

  async function checkFactories(now: number): Promise<number> {
    const seen = new Set<string>();
    let cursor: string | null = null;
    do {
      const page = await coordinator.listStaleFactories({ limit: FACTORY_PAGE, cursor }, now);
      if (!page.ok) throw page.error;
      for (const f of page.value.items) {
        const key = `${f.productId}\0${f.factoryId}`;
        seen.add(key);
        if (!stale.has(key)) {
          log.warn(
            {
              productId: f.productId,
              factoryId: f.factoryId,
              lastHeartbeatAt: f.lastHeartbeatAt,
              now,
            },
            'factory is stale: no heartbeat for 3 intervals',
          );
        }
      }
      cursor = page.value.nextCursor;
    } while (cursor !== null);
    stale = seen;
    return seen.size;
  }

  async function sweep(): Promise<SupervisorSweepOutput> {
    const started = clock.now();
    try {
      const counts = await coordinator.sweep(started);
      const report: SupervisorReport = {
        ...counts,
        staleFactories: await checkFactories(started),
      };
      return { report, durationMs: Math.max(0, clock.now() - started) };
    } catch (e) {
      throw new SweepFailure(e, Math.max(0, clock.now() - started));
    }
  }

  /** Callers of `sweepNow()` waiting for the next sweep to start / for the running one to end. */
  let waitingToStart: Array<{ resolve(o: SweepOutcome): void; reject(e: unknown): void }> = [];
  let waitingToEnd: typeof waitingToStart = [];

  function emit(event: SupervisorEvent): void {
    try {
      options.onReport?.(event);
    } catch (e) {
      log.error(errorInfo(e), 'supervisor: onReport listener threw');
    }
  }

  function settle(outcome: SweepOutcome): void {
    const waiters = waitingToEnd;
    waitingToEnd = [];
    emit(outcome);
    for (const w of waiters) w.resolve(outcome);
  }

  const machine = supervisorMachine.provide({
    actors: { sweep: fromPromise(sweep) },
    delays: {
      interval: ({ context }) => jitteredDelay(context.intervalMs, context.jitter, random()),
    },
    actions: {
      reportStarted: () => {
        waitingToEnd = waitingToStart;
        waitingToStart = [];
        log.debug({}, 'sweep started');
        emit({ phase: 'started' });
      },
      reportSucceeded: (_, { output }) => {
        const report = output.report as SupervisorReport;
        const msg = 'sweep succeeded';
        if (changedSomething(report)) log.info({ ...report, durationMs: output.durationMs }, msg);
        else log.debug({ ...report, durationMs: output.durationMs }, msg);
        settle({ phase: 'succeeded', report, durationMs: output.durationMs });
      },
      reportFailed: (_, { error }) => {
        const failure = error instanceof SweepFailure ? error : null;
        const cause = failure ? failure.cause : error;
        const durationMs = failure ? failure.durationMs : 0;
        log.error({ ...errorInfo(cause), durationMs }, 'sweep failed');
        settle({ phase: 'failed', error: cause, durationMs });
      },
    },
  });

  const actor = createActor(machine, {
    input: { intervalMs, jitter },
    ...(options.timers ? { clock: options.timers } : {}),
  });
  const rejectWaiting = (): void => {
    const pending = [...waitingToStart, ...waitingToEnd];
    waitingToStart = [];
    waitingToEnd = [];
    for (const w of pending) w.reject(new Error('the supervisor stopped'));
  };
  // The machine reports sweep failures itself; an actor error here is a bug of ours
  // (say, in a report action): log it rather than leave an unhandled rejection.
  const done = toPromise(actor).then(rejectWaiting, (e: unknown) => {
    log.error(errorInfo(e), 'supervisor crashed');
    rejectWaiting();
  });
  actor.start();

  return {
    sweepNow() {
      if (actor.getSnapshot().status !== 'active' || actor.getSnapshot().context.stopping) {
        return Promise.reject(new Error('the supervisor is stopped'));
      }
      return new Promise<SweepOutcome>((resolve, reject) => {
        waitingToStart.push({ resolve, reject });
        actor.send({ type: 'SWEEP_NOW' });
      });
    },
    stop() {
      if (actor.getSnapshot().status === 'active') actor.send({ type: 'STOP' });
      return done;
    },
    get stats() {
      const { sweeps, failures, consecutiveFailures } = actor.getSnapshot().context;
      return { sweeps, failures, consecutiveFailures };
    },
  };
}
