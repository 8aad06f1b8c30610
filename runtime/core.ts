/**
 * What every part of the coordinator shares: the store, the clock, the machine, the
 * product mailboxes, the write path, the event reporter and the dependency logic. The
 * `Coordinator` (coordinator.ts) is a façade over one `Core`; each concept lives in its
 * own file (submission.ts, claim.ts, worker-calls.ts, sweep.ts, factories.ts, reads.ts,
 * admin.ts) as functions of a `Core`. Internal to the runtime: hosts use `Coordinator`.
 */
import type { AnyStateMachine } from 'xstate';
import type { SnapshotMigrations } from '../machines/index.js';
import type { Clock } from './clock.js';
import { Dependencies } from './dependencies.js';
import type { DocumentStore, FinishedJobKey } from './document-store.port.js';
import { fail, isFleetError, ok, type Result } from './errors.js';
import { EventReporter } from './event-reporter.js';
import { Mailboxes } from './mailbox.js';
import type { LiveProjections } from './projections.js';
import { WritePath } from './write-path.js';

/** A narrow logger (pino-compatible). */
export interface Logger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const silentLogger: Logger = { warn: () => {}, error: () => {} };

/** Optimistic-concurrency retries before giving up on one operation. */
export const MAX_CONFLICTS = 64;

/** Failures that mean the store cannot serve: they end a loop instead of skipping a job. */
export const STORE_DOWN = ['STORE_UNAVAILABLE', 'RATE_LIMITED'] as const;

/** Counts of one supervisor sweep. */
export interface SweepReport {
  reaped: number;
  retried: number;
  budgetExceeded: number;
  repaired: number;
  unblocked: number;
  /** Jobs whose step failed (logged with their id and skipped; the sweep went on). */
  failedJobs: number;
  /** Retention (issue 14): finished jobs deleted with their documents (retention.ts). */
  pruned: number;
}

function zodDetail(error: {
  issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>;
}): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.map(String).join('.') : '(body)'}: ${i.message}`)
    .join('; ');
}

/** Validates `input` with a zod schema: the value, or `VALIDATION` naming what is wrong. */
export function parse<T>(
  schema: {
    safeParse(v: unknown):
      | { success: true; data: T }
      | {
          success: false;
          error: { issues: ReadonlyArray<{ path: PropertyKey[]; message: string }> };
        };
  },
  input: unknown,
): Result<T> {
  const r = schema.safeParse(input);
  return r.success ? ok(r.data) : fail('VALIDATION', zodDetail(r.error));
}

export const byId = (a: { id: string }, b: { id: string }): number =>
  a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

export const stripEtag = <T extends object>(doc: T & { _etag?: string }): T => {
  const { _etag: _ignored, ...rest } = doc;
  return rest as T;
};

export interface CoreOptions {
  store: DocumentStore;
  clock: Clock;
  random: () => number;
  leaseMs: number;
  heartbeatIntervalMs: number;
  claimSpread: number;
  machine: AnyStateMachine;
  /** `machine`'s version and the migrations of older snapshots to it. */
  versions: SnapshotMigrations;
  log: Logger;
  projections: LiveProjections | null;
  /** Retention (issue 14): how long finished jobs are kept, in ms; 0 keeps them forever. */
  retentionMs: number;
  /** Retention: finished jobs a sweep looks at, at most. */
  prunePerSweep: number;
}

export class Core {
  readonly store: DocumentStore;
  readonly clock: Clock;
  readonly random: () => number;
  readonly leaseMs: number;
  readonly heartbeatIntervalMs: number;
  readonly claimSpread: number;
  readonly machine: AnyStateMachine;
  readonly versions: SnapshotMigrations;
  readonly log: Logger;
  readonly mailboxes = new Mailboxes();
  readonly reporter: EventReporter;
  readonly writes: WritePath;
  readonly deps: Dependencies;
  /** Where the blocked-jobs repair pass resumes (null: from the start). */
  blockedCursor: string | null = null;
  /** Retention (issue 14): how long finished jobs are kept, in ms; 0 keeps them forever. */
  readonly retentionMs: number;
  /** Retention: finished jobs a sweep looks at, at most. */
  readonly prunePerSweep: number;
  /** Retention: where the sweep's pruning pass resumes (null: from the oldest). */
  pruneCursor: FinishedJobKey | null = null;
  /** Retention: sweeps skip pruning until this time (ms) after a pass found nothing. */
  pruneIdleUntil: number | null = null;
  #isolatedFailures = 0;
  #lastSeq = 0;

  constructor(o: CoreOptions) {
    this.store = o.store;
    this.clock = o.clock;
    this.random = o.random;
    this.leaseMs = o.leaseMs;
    this.heartbeatIntervalMs = o.heartbeatIntervalMs;
    this.claimSpread = o.claimSpread;
    this.machine = o.machine;
    this.versions = o.versions;
    this.log = o.log;
    this.reporter = new EventReporter(o.store, o.log, o.projections);
    this.writes = new WritePath(this);
    this.deps = new Dependencies(this);
    this.retentionMs = o.retentionMs;
    this.prunePerSweep = o.prunePerSweep;
  }

  /** Per-job failures isolated so far (logged and skipped) in sweeps and cascades. */
  get isolatedFailures(): number {
    return this.#isolatedFailures;
  }

  /**
   * The submission sequence of a job submitted now: the clock in microseconds, bumped
   * past the last one this process gave, so one process orders its submissions exactly
   * whatever its clock does (README: "Claim order").
   */
  nextSeq(now: number): number {
    const seq = Math.max(this.#lastSeq + 1, now * 1000);
    this.#lastSeq = seq;
    return seq;
  }

  /**
   * Runs `task` in the product's mailbox, then waits until its writes are durable and
   * reports the events it stored (see `WritePath.act`).
   */
  act<T>(productId: string, task: () => Promise<T>): Promise<T> {
    return this.writes.act(productId, task);
  }

  /**
   * Runs one job's step of a loop (sweep, cascade) so that its failure cannot stop the
   * others: logged with the job's id, counted, and swallowed, unless the store itself
   * is unavailable (then the loop ends: every next step would fail the same way).
   */
  async isolated(
    job: { productId: string; id: string },
    what: string,
    step: () => Promise<unknown>,
    report?: SweepReport,
  ): Promise<void> {
    try {
      await step();
    } catch (e) {
      if (isFleetError(e, ...STORE_DOWN)) throw e;
      this.#isolatedFailures++;
      if (report) report.failedJobs++;
      this.log.error(
        { jobId: job.id, productId: job.productId, err: e },
        `${what} failed for job ${job.id}; skipped`,
      );
    }
  }

  /** Counts a failure isolated outside `isolated` (a claim skipping a job). */
  countIsolated(): void {
    this.#isolatedFailures++;
  }
}
