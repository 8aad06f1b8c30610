/**
 * The coordinator: the runtime's one entry point for hosts. A thin façade over a `Core`
 * (core.ts); each concept has its own file, so a reader finds a path by its name:
 * - submission.ts — idempotent submit, supersede, deps and cycles at submit;
 *   bulk-submission.ts — up to 1,000 submissions answered per item, written as one unit;
 * - claim.ts — selection, claim spread, seat limits;
 * - worker-calls.ts — fenced moves, progress, renew, release;
 * - sweep.ts — reaping, retries, budgets, outbox and blocked-job repair;
 * - write-path.ts — read → decide with the machine → etag write → follow-ups, and the
 *   product mailboxes; event-reporter.ts — reporting stored events exactly once;
 * - dependencies.ts — deps status, cycles, dependents cascades (from index columns);
 * - factories.ts, admin.ts, reads.ts.
 *
 * Every method returns a `Result` for expected failures (coded `FleetError`s); store
 * failures are thrown. Nothing is answered before it is durable.
 */
import type { AnyStateMachine } from 'xstate';
import {
  JOB_SNAPSHOT_MIGRATIONS,
  jobMachine,
  registryProblems,
  type SnapshotMigrations,
} from '../machines/index.js';
import { cancel as adminCancel, requeue as adminRequeue } from './admin.js';
import { type SubmitManyResult, submitMany } from './bulk-submission.js';
import { claimNextJob, MAX_CANDIDATES } from './claim.js';
import { type Clock, systemClock } from './clock.js';
import { Core, type Logger, type SweepReport, silentLogger } from './core.js';
import type { DocumentStore, JobListView, JobOfView, Stored } from './document-store.port.js';
import { FleetError, fail, isFleetError, ok, type Result } from './errors.js';
import * as factories from './factories.js';
import { LiveProjections } from './projections.js';
import * as reads from './reads.js';
import {
  PRUNE_PER_SWEEP,
  type PruneOptions,
  type PruneReport,
  prune as prunePass,
} from './retention.js';
import { submit } from './submission.js';
import * as sweeps from './sweep.js';
import type {
  ArtifactDoc,
  ClaimGrant,
  ClaimInput,
  EventDoc,
  FactoryDoc,
  HeartbeatInput,
  JobDoc,
  Page,
  PatchInput,
  ProgressInput,
  ReleaseInput,
  RenewInput,
  RunDoc,
  Stage,
  SubmitInput,
  SubmitManyItem,
  SubmitOutcome,
} from './types.js';
import type { Conditional } from './worker-calls.js';
import * as worker from './worker-calls.js';

export { SUBMIT_MANY_MAX, type SubmitManyResult } from './bulk-submission.js';
export type { Logger, SweepReport } from './core.js';
export type { PruneOptions, PruneReport } from './retention.js';
export type { Conditional } from './worker-calls.js';

export interface CoordinatorOptions {
  store: DocumentStore;
  /** @defaultValue the system clock */
  clock?: Clock;
  /** Source of jitter, in [0, 1). @defaultValue Math.random */
  random?: () => number;
  /** Lease length granted by a claim and by a renewal without `extendMs`, in ms. @defaultValue 60000 */
  leaseMs?: number;
  /** Heartbeat interval assumed for factories that name none, in ms; stale after 3 missed. @defaultValue 10000 */
  heartbeatIntervalMs?: number;
  /** The job machine (tests swap in variants). @defaultValue jobMachine */
  machine?: AnyStateMachine;
  /**
   * `machine`'s version (stamped on every job it writes) and the migrations that bring a
   * snapshot of each older version to it, applied when a job is read to be changed.
   * Must hold a migration from every version 1 … `version - 1` (checked here:
   * `VALIDATION` otherwise). Pass it with a `machine` of another version (tests).
   * @defaultValue JOB_SNAPSHOT_MIGRATIONS (the job machine's)
   */
  machineVersions?: SnapshotMigrations;
  /**
   * How many of the best candidates of the highest queued priority a claim picks among
   * at random. 1 (the default) hands out strictly oldest first, right for one process:
   * its mailbox serialises its claims, so it never races itself for the head. With
   * several processes on one store (Cosmos DB), each would read the same head and all
   * but one would lose the race on every claim; picking at random among the `k` oldest
   * of the best priority spreads them (a job may then overtake up to `k - 1` older ones
   * of its priority; never one of a higher priority).
   * @defaultValue 1
   */
  claimSpread?: number;
  /**
   * Maintain `projections` (timelines, insight totals, stage counts) live from the events
   * this process reports. Off by default: they hold every job the process ever touched,
   * and nothing in the server reads them; tests, the simulator and hosts that read them
   * turn them on.
   * @defaultValue false
   */
  liveProjections?: boolean;
  logger?: Logger;
  /**
   * Retention (issue 14; `retention.ts`): how long a `shipped` or `dead_letter` job is
   * kept after it finished, in ms; then each sweep deletes it with its runs, lease,
   * events and artifact pointers, a bounded slice per sweep. A job another job names
   * in its deps is kept until that one is gone. 0 keeps every job forever (the
   * library's default; the standalone server's `FLEET_RETENTION` defaults to 30 days).
   * @defaultValue 0
   */
  retentionMs?: number;
  /**
   * Finished jobs a sweep looks at for pruning, at most (a whole number ≥ 1): the
   * bound of a sweep's retention work (see `PRUNE_PER_SWEEP` for the numbers).
   * @defaultValue 4096
   */
  prunePerSweep?: number;
}

export class Coordinator {
  readonly store: DocumentStore;
  readonly clock: Clock;
  /**
   * Projections maintained live from the events this process reports, or null when
   * not asked for (`liveProjections`).
   */
  readonly projections: LiveProjections | null;
  readonly leaseMs: number;
  readonly heartbeatIntervalMs: number;
  /** How long finished jobs are kept, in ms; 0: forever ({@link CoordinatorOptions.retentionMs}). */
  readonly retentionMs: number;
  readonly #core: Core;

  constructor(options: CoordinatorOptions) {
    const spread = options.claimSpread ?? 1;
    if (!Number.isInteger(spread) || spread < 1 || spread > MAX_CANDIDATES) {
      throw new FleetError(
        'VALIDATION',
        `claimSpread must be a whole number from 1 to ${MAX_CANDIDATES}`,
      );
    }
    const leaseMs = options.leaseMs ?? 60_000;
    if (!Number.isInteger(leaseMs) || leaseMs < 1000) {
      throw new RangeError(`leaseMs must be an integer ≥ 1000, got ${leaseMs}`);
    }
    const versions = options.machineVersions ?? JOB_SNAPSHOT_MIGRATIONS;
    const problems = registryProblems(versions);
    if (problems.length > 0) {
      throw new FleetError('VALIDATION', `machineVersions: ${problems.join('; ')}`);
    }
    const retentionMs = options.retentionMs ?? 0;
    if (!Number.isSafeInteger(retentionMs) || retentionMs < 0) {
      throw new RangeError(`retentionMs must be an integer ≥ 0, got ${retentionMs}`);
    }
    this.retentionMs = retentionMs;
    const prunePerSweep = options.prunePerSweep ?? PRUNE_PER_SWEEP;
    if (!Number.isInteger(prunePerSweep) || prunePerSweep < 1) {
      throw new RangeError(`prunePerSweep must be an integer ≥ 1, got ${prunePerSweep}`);
    }
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.leaseMs = leaseMs;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 10_000;
    this.projections = options.liveProjections === true ? new LiveProjections() : null;
    this.#core = new Core({
      store: this.store,
      clock: this.clock,
      random: options.random ?? Math.random,
      leaseMs,
      heartbeatIntervalMs: this.heartbeatIntervalMs,
      claimSpread: spread,
      machine: (options.machine ?? jobMachine) as AnyStateMachine,
      versions,
      log: options.logger ?? silentLogger,
      projections: this.projections,
      retentionMs,
      prunePerSweep,
    });
  }

  /**
   * Calls `listener` with every event this process stored, once its commit succeeded:
   * each stored event is reported by exactly one process (the one whose append stored
   * it), once, and never one a failed commit rolled back. Within a job, events come in
   * `seq` order, except one whose append outcome was unknown: it is reported when that
   * is settled (the next sweep), possibly after later ones.
   */
  subscribe(listener: (event: EventDoc) => void): () => void {
    return this.#core.reporter.subscribe(listener);
  }

  /** Per-job failures isolated so far (logged and skipped) in sweeps and cascades. */
  get isolatedFailures(): number {
    return this.#core.isolatedFailures;
  }

  /** Resolves when every queued mailbox task has finished. */
  drain(): Promise<void> {
    return this.#core.mailboxes.drain();
  }

  /**
   * Idempotent submission on `(productId, idempotencyKey)`: a new key creates the job
   * (`created`); the same content returns it (`existing`); different content replaces
   * it while it is `queued` or `blocked` (`superseded`, version + 1) and is an
   * `IDEMPOTENCY_CONFLICT` after that. Deps must name jobs of the product
   * (`UNKNOWN_DEPENDENCY`) and may not close a cycle (`DEPENDENCY_CYCLE`). A job with
   * unmet deps starts `blocked`; with a dep in `dead_letter`, it goes there too.
   */
  submit(
    productId: string,
    input: SubmitInput,
    actor: string | null = null,
  ): Promise<Result<{ job: Stored<JobDoc>; outcome: SubmitOutcome }>> {
    return submit(this.#core, productId, input, actor);
  }

  /**
   * Bulk submission: up to {@link SUBMIT_MANY_MAX} (1,000) jobs, one answer per item in
   * order — `created`, `existing` (same key, same content: the job as it is, also for a
   * key repeated in the batch), or the item's own problem (`VALIDATION`,
   * `IDEMPOTENCY_CONFLICT` for the same key with other content — a batch never
   * supersedes —, `UNKNOWN_DEPENDENCY`, `DEPENDENCY_CYCLE`); one bad item never fails
   * the others. Items are decided in order, so an item may depend on an earlier one (by
   * id, or by key with `depKeys`). The new jobs are written as one unit: on SQLite and
   * memory one atomic step of one durable commit; a store failure throws, and then none
   * of them exists and no event was reported. `VALIDATION` for the whole call when
   * `items` is not an array or holds more than 1,000.
   */
  submitMany(
    productId: string,
    items: readonly SubmitManyItem[],
    actor: string | null = null,
  ): Promise<Result<SubmitManyResult[]>> {
    return submitMany(this.#core, productId, items, actor);
  }

  /**
   * Hands the best eligible job to the factory: among the product's `queued` jobs past
   * `notBefore` whose capabilities the factory has, the highest priority, then the
   * oldest (submission sequence). Moves it to `assigned` under a new epoch and opens a
   * run. Returns null when nothing is eligible or the factory is at its `seatLimit`.
   * A job is handed out at most once per epoch, however many claims race.
   */
  claimNextJob(productId: string, input: ClaimInput): Promise<Result<ClaimGrant | null>> {
    return claimNextJob(this.#core, productId, input);
  }

  /**
   * A fenced stage move (`PATCH /fleet/jobs/:id`). A call whose `leaseEpoch` is not the
   * job's epoch, or whose `factoryId` is not the holder, is `FENCED` (checked before the
   * lifecycle); a move the machine does not allow is `INVALID_TRANSITION`; either way
   * nothing changes. Checkpoint, insights and artifacts in the same call are applied
   * with the move or not at all. `ifMatch` makes the write conditional on the job's etag.
   */
  transition(
    productId: string,
    jobId: string,
    input: PatchInput,
    options: Conditional = {},
  ): Promise<Result<Stored<JobDoc>>> {
    return worker.transition(this.#core, productId, jobId, input, options);
  }

  /**
   * A fenced write that moves no stage: checkpoint, insight increments, artifact
   * pointers. Same fencing as `transition`; a budget exceeded by the reported insights
   * sends the job to `dead_letter` (reason `budget_exceeded`) and fences the holder out.
   * With `seq`, the holder's call at or below the run's last applied seq is a retry of an
   * applied call: it answers the job unchanged and applies nothing.
   */
  recordProgress(
    productId: string,
    jobId: string,
    input: ProgressInput,
    options: Conditional = {},
  ): Promise<Result<Stored<JobDoc>>> {
    return worker.recordProgress(this.#core, productId, jobId, input, options);
  }

  /** Extends the lease to now + `extendMs` (default `leaseMs`); fenced. */
  renewLease(
    productId: string,
    jobId: string,
    input: RenewInput,
    options: Conditional = {},
  ): Promise<Result<{ leaseEpoch: number; expiresAt: string }>> {
    return worker.renewLease(this.#core, productId, jobId, input, options);
  }

  /** Gives the job back: `queued` (or `blocked`), epoch + 1, checkpoint kept; fenced. */
  releaseLease(
    productId: string,
    jobId: string,
    input: ReleaseInput,
    options: Conditional = {},
  ): Promise<Result<Stored<JobDoc>>> {
    return worker.releaseLease(this.#core, productId, jobId, input, options);
  }

  /** Registers the factory on its first beat and records every later one. */
  heartbeat(
    productId: string,
    input: HeartbeatInput,
  ): Promise<Result<FactoryDoc & { stale: boolean }>> {
    return factories.heartbeat(this.#core, productId, input);
  }

  /** True when a factory missed three heartbeats. */
  isStale(
    factory: Pick<FactoryDoc, 'lastHeartbeatAt' | 'heartbeatIntervalMs'>,
    now = this.clock.now(),
  ): boolean {
    return factories.isStale(this.#core, factory, now);
  }

  /** The product's factories, each with a derived `stale`. */
  listFactories(
    productId: string,
    page: { limit?: number; cursor?: string | null } = {},
  ): Promise<Result<Page<FactoryDoc & { stale: boolean }>>> {
    return factories.listFactories(this.#core, productId, page);
  }

  /**
   * Stale factories (three missed beats) of every product, oldest beat first, as at
   * `now`; paged. A page may hold fewer than `limit` and still name a next one.
   */
  listStaleFactories(
    page: { limit?: number; cursor?: string | null } = {},
    now = this.clock.now(),
  ): Promise<Result<Page<FactoryDoc & { stale: true }>>> {
    return factories.listStaleFactories(this.#core, page, now);
  }

  /**
   * Reaps leases that expired at or before `now`: each job goes back to `queued` (or
   * `blocked` if its deps are now unmet) with epoch + 1 and its checkpoint, or to
   * `dead_letter` (reason `lease_expired`) if that was its last allowed attempt.
   * Idempotent: a second run finds nothing. Returns how many were reaped.
   */
  reapExpiredLeases(now = this.clock.now()): Promise<number> {
    return sweeps.reapExpiredLeases(this.#core, now);
  }

  /** Moves `failed` jobs whose backoff has passed back to `queued` (or `blocked`). */
  retryDue(now = this.clock.now()): Promise<number> {
    return sweeps.retryDue(this.#core, now);
  }

  /**
   * One supervisor sweep: due timers (expired leases, due retries, budgets), outbox
   * repair, a slice of the blocked jobs re-checked (repairing a notification a crash
   * lost; see {@link BLOCKED_REPAIRS_PER_SWEEP}), and event appends with an unknown
   * outcome settled. Every write is etag-guarded and idempotent, so sweeps may run in
   * every process at once. A job whose step fails is logged, counted (`failedJobs`) and
   * skipped; the sweep goes on. It yields to the event loop as it goes.
   */
  sweep(now = this.clock.now()): Promise<SweepReport> {
    return sweeps.sweep(this.#core, now);
  }

  /** `dead_letter` or `failed` → `queued` (or `blocked`), retry count and budgets reset. */
  requeue(
    productId: string,
    jobId: string,
    actor: string | null = 'admin',
    options: Conditional = {},
  ): Promise<Result<Stored<JobDoc>>> {
    return adminRequeue(this.#core, productId, jobId, actor, options);
  }

  /** Any non-terminal stage → `dead_letter` (reason `cancelled`); the holder is fenced out. */
  cancel(
    productId: string,
    jobId: string,
    reason: string | null = null,
    actor: string | null = 'admin',
    options: Conditional = {},
  ): Promise<Result<Stored<JobDoc>>> {
    return adminCancel(this.#core, productId, jobId, reason, actor, options);
  }

  /** One job of the product, or NOT_FOUND (also for another product's job). */
  getJob(productId: string, jobId: string): Promise<Result<Stored<JobDoc>>> {
    return reads.getJob(this.#core, productId, jobId);
  }

  /** The product's job submitted under `idempotencyKey`, or NOT_FOUND (a point read: ids derive from keys). */
  findByIdempotencyKey(productId: string, idempotencyKey: string): Promise<Result<Stored<JobDoc>>> {
    return reads.findByIdempotencyKey(this.#core, productId, idempotencyKey);
  }

  /** The product's jobs, newest first, optionally of one stage; `view` and `maxBytes` as in the port's `jobs.list`. */
  listJobs<V extends JobListView = 'full'>(
    productId: string,
    q: { stage?: Stage; limit?: number; cursor?: string | null; view?: V; maxBytes?: number } = {},
  ): Promise<Result<Page<Stored<JobOfView<V>>>>> {
    return reads.listJobs(this.#core, productId, q);
  }

  /** The job's runs in attempt order. */
  listRuns(
    productId: string,
    jobId: string,
    q: { limit?: number; cursor?: string | null } = {},
  ): Promise<Result<Page<Stored<RunDoc>>>> {
    return reads.listRuns(this.#core, productId, jobId, q);
  }

  /** The job's artifact pointers. */
  listArtifacts(
    productId: string,
    jobId: string,
    q: { limit?: number; cursor?: string | null } = {},
  ): Promise<Result<Page<Stored<ArtifactDoc>>>> {
    return reads.listArtifacts(this.#core, productId, jobId, q);
  }

  /**
   * The job's event stream in `seq` order (1, 2, 3... no gap). `cursor` is the last
   * seq seen. Pending outbox events are written first, so the stream is complete.
   */
  listEvents(
    productId: string,
    jobId: string,
    q: { limit?: number; cursor?: string | null } = {},
  ): Promise<Result<Page<EventDoc>>> {
    return reads.listEvents(this.#core, productId, jobId, q);
  }

  // --- Retention (issue 14) ---------------------------------------------------------

  /**
   * One pruning pass (`retention.ts`): looks at up to `limit` jobs of every product that
   * finished (`shipped`, `dead_letter`) before `before` (epoch ms), oldest first, from
   * `after` (a previous report's `next`), and deletes each with its runs, lease, events
   * and artifact pointers, unless another job names it in its deps (`kept`). With
   * `dryRun`, only counts. Resolves once the deletions are durable. A store without
   * `purgeJob` answers `NOT_IMPLEMENTED` (a dry run still counts).
   */
  async prune(options: PruneOptions): Promise<Result<PruneReport>> {
    const { before, limit } = options;
    if (!Number.isFinite(before)) return fail('VALIDATION', 'before must be a time (epoch ms)');
    if (!Number.isInteger(limit) || limit < 1) {
      return fail('VALIDATION', 'limit must be a whole number ≥ 1');
    }
    const from = this.store.mark();
    try {
      const report = await prunePass(this.#core, options);
      await this.store.sync(from);
      return ok(report);
    } catch (e) {
      if (isFleetError(e, 'NOT_IMPLEMENTED')) return { ok: false, error: e };
      throw e;
    }
  }
}
