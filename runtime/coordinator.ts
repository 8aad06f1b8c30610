/**
 * The coordinator: submission, claim, fenced transitions, leases, heartbeats, the due
 * sweep (reaper + retry scheduler), admin requeue/cancel, and reads.
 *
 * The one rule (DESIGN.md): every decision that must be atomic lives in one job
 * document and is written with an etag condition. A change is: read the job and its
 * etag; compute the next document with the machine's pure `transition()` (a
 * `JobDraft`); if the machine rejected the event, answer FENCED / INVALID_TRANSITION
 * and write nothing; write with `If-Match`; on a conflict re-read and decide again
 * (a worker whose epoch is now stale then gets FENCED). Only after the write succeeded
 * are the derived documents written: the job write carries them in its outbox
 * (events numbered gap-free, run and lease versions, artifact pointers, "re-evaluate my
 * dependents"), and `#flush` writes them idempotently, then clears the outbox. A crash
 * between the two is repaired by the next write of the job (which flushes first), by a
 * read of its events, or by the sweep.
 *
 * In one process, every mutation of a product goes through that product's mailbox, so
 * claims of one product do not race each other; across processes, etags decide.
 *
 * Events are reported (to `subscribe` listeners and live projections) exactly once, and
 * only once durable: by the process whose append stored them (each stored event names
 * its writer, so a process that finds an event already stored can tell whether its own
 * earlier append, whose answer it never got, put it there), after the store's commit of
 * that append succeeded (`sync(mark)`). An append whose outcome is unknown is settled
 * later by reading the event back (the sweep does it).
 *
 * One bad job never stops the others: every per-job step of a sweep and of a dependents
 * cascade is isolated (an error is logged with the job's id, counted, and the loop goes
 * on; only an unavailable store ends it). Long loops yield to the event loop (see
 * `yielder.ts`), and dependency checks read index columns (`JobLink`s), never a dep's
 * document.
 */
import { randomBytes } from 'node:crypto';
import { type AnyStateMachine, initialTransition } from 'xstate';
import { JOB_MACHINE_VERSION, type JobMachineEventType, jobMachine } from '../machines/index.js';
import { addUsage, exceededBudget, usageIsRepresentable, ZERO_USAGE } from './budget.js';
import { contentHash, jobIdFor } from './canonical.js';
import { type Clock, iso, ms, systemClock } from './clock.js';
import { type DepsStatus, evaluateDeps, findCycle } from './deps.js';
import type {
  DocumentStore,
  JobLink,
  JobListView,
  JobOfView,
  PageRequest,
  Stored,
} from './document-store.port.js';
import { FleetError, fail, isFleetError, ok, type Result } from './errors.js';
import { JobDraft, persistSnapshot } from './job-draft.js';
import { Mailboxes } from './mailbox.js';
import { LiveProjections } from './projections.js';
import { backoffDelay, isRetryable } from './retry-policy.js';
import * as S from './schemas.js';
import {
  ACTIVE_STAGES,
  type ArtifactDoc,
  type ClaimGrant,
  type ClaimInput,
  type EventDoc,
  type FactoryDoc,
  type HeartbeatInput,
  type JobDoc,
  type OutboxEffect,
  type Page,
  type PatchInput,
  type PatchTarget,
  type ProgressInput,
  type ReleaseInput,
  type RenewInput,
  type RunDoc,
  type Stage,
  type SubmitInput,
  type SubmitOutcome,
  type SubmitRequest,
} from './types.js';
import { Yielder } from './yielder.js';

/** A narrow logger (pino-compatible). */
export interface Logger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const silentLogger: Logger = { warn: () => {}, error: () => {} };

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
}

/** `ifMatch`: write only if the job's etag still is this (else `PRECONDITION_FAILED`), atomically. */
export interface Conditional {
  ifMatch?: string;
}

/** Counts of one supervisor sweep. */
export interface SweepReport {
  reaped: number;
  retried: number;
  budgetExceeded: number;
  repaired: number;
  unblocked: number;
  /** Jobs whose step failed (logged with their id and skipped; the sweep went on). */
  failedJobs: number;
}

const emptyReport = (): SweepReport => ({
  reaped: 0,
  retried: 0,
  budgetExceeded: 0,
  repaired: 0,
  unblocked: 0,
  failedJobs: 0,
});

type Listener = (event: EventDoc) => void;

/** True when the job's open run was opened by the job's latest write (a claim). */
const opened = (job: JobDoc): boolean =>
  job.run !== null && job.run.startedAt === job.updatedAt && job.run.attempt === job.attempt;

const ACTIVE = new Set<Stage>(ACTIVE_STAGES);
/** The machine event of each worker move but `failed` (which carries retry facts). */
const MOVE_EVENT = {
  building: 'BUILD',
  review: 'REVIEW',
  testing: 'TEST',
  shipped: 'SHIP',
} as const satisfies Record<Exclude<PatchTarget, 'failed'>, JobMachineEventType>;

/** Optimistic-concurrency retries before giving up on one operation. */
const MAX_CONFLICTS = 64;
/** Claim candidates fetched per selection round. */
const CLAIM_CANDIDATES = 8;
/** Most candidates fetched when the head of the queue is unreadable. */
const MAX_CANDIDATES = 256;
/** Due jobs fetched per sweep batch. */
const SWEEP_BATCH = 256;
/** Jobs with a pending outbox repaired per sweep, at most. */
const OUTBOX_REPAIRS_PER_SWEEP = 1024;
/**
 * Blocked jobs re-checked per sweep, at most. Dependents are re-evaluated when their
 * deps change (the dep's outbox carries the notification durably); this pass only
 * repairs what a crash or a bug could have missed, so it walks the blocked jobs a slice
 * per sweep, resuming where the last one stopped: a sweep's cost does not grow with
 * the number of blocked jobs.
 */
const BLOCKED_REPAIRS_PER_SWEEP = 256;
/** Event appends with an unknown outcome remembered for settling, at most. */
const MAX_UNCERTAIN = 10_000;
/** Unsettled appends looked at by one operation (a sweep looks at all of them). */
const SETTLE_PER_OPERATION = 16;
/**
 * Times an unsettled append is looked for in vain before it is forgotten. An event of a
 * pending outbox is always appended by someone eventually (then it is found); one that
 * is never found belonged to a write that was lost or a job that is gone.
 */
const SETTLE_TRIES = 64;

/** Ids asked of `jobs.links` per call at most. */
const LINKS_PER_CALL = 500;

/** Failures that mean the store cannot serve: they end a loop instead of skipping a job. */
const STORE_DOWN = ['STORE_UNAVAILABLE', 'RATE_LIMITED'] as const;

/** An event reported once the commit of its append is known to have succeeded. */
interface Appended {
  event: EventDoc;
  /** The store's mark taken before the append (`sync(mark)` covers it). */
  mark: number;
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** The event as clients see it: without the writer stamp. */
function publicEvent(e: EventDoc): EventDoc {
  if (e.writer === undefined) return e;
  const { writer: _w, ...rest } = e;
  return rest;
}

function zodDetail(error: {
  issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>;
}): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.map(String).join('.') : '(body)'}: ${i.message}`)
    .join('; ');
}

function parse<T>(
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

const byId = (a: { id: string }, b: { id: string }): number =>
  a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

const stripEtag = <T extends object>(doc: T & { _etag?: string }): T => {
  const { _etag: _ignored, ...rest } = doc;
  return rest as T;
};

/** Submitted content, normalised: the part of a submission idempotency compares. */
function contentOf(req: SubmitRequest) {
  return {
    bodyMd: req.bodyMd,
    manifestSnapshot: req.manifestSnapshot,
    priority: req.priority,
    capabilities: [...new Set(req.capabilities)].sort(),
    deps: [...new Set(req.deps)].sort(),
    depsMode: req.depsMode,
    // `{}` and no budget both mean "no limits": one canonical form.
    budget: req.budget && Object.keys(req.budget).length > 0 ? req.budget : null,
    // `on` is a set of error classes: one canonical form whatever the order or repeats.
    retry: { ...req.retry, on: [...new Set(req.retry.on)].sort() },
    kind: req.kind,
    parentId: req.parentId,
    trackerItemId: req.trackerItemId ?? null,
    engineClass: req.engineClass ?? null,
    profile: req.profile ?? null,
  };
}

/** The content fields of a stored job (what a supersede replaces). */
function contentFields(doc: JobDoc): ReturnType<typeof contentOf> {
  return {
    bodyMd: doc.bodyMd,
    manifestSnapshot: doc.manifestSnapshot,
    priority: doc.priority,
    capabilities: doc.capabilities,
    deps: doc.deps,
    depsMode: doc.depsMode,
    budget: doc.budget,
    retry: doc.retry,
    kind: doc.kind,
    parentId: doc.parentId,
    trackerItemId: doc.trackerItemId,
    engineClass: doc.engineClass,
    profile: doc.profile,
  };
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
  readonly #random: () => number;
  readonly #claimSpread: number;
  readonly #machine: AnyStateMachine;
  readonly #log: Logger;
  readonly #mailboxes = new Mailboxes();
  readonly #listeners = new Set<Listener>();
  #lastSeq = 0;
  /**
   * Stamped on every event this process appends, with a counter: which append stored it,
   * so who reports it (an append whose answer was lost is known by its own stamp).
   */
  readonly #writer = randomBytes(9).toString('base64url');
  #appends = 0;
  /** Events this process stored, to report once their commit is known good. */
  #appended: Appended[] = [];
  /** Appends with an unknown outcome: event id → its job, the stamp that append carried, looks so far. */
  readonly #uncertain = new Map<string, { jobId: string; stamp: string; tries: number }>();
  /** Where the blocked-jobs repair pass resumes (null: from the start). */
  #blockedCursor: string | null = null;
  #isolatedFailures = 0;

  constructor(options: CoordinatorOptions) {
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    const spread = options.claimSpread ?? 1;
    if (!Number.isInteger(spread) || spread < 1 || spread > MAX_CANDIDATES) {
      throw new FleetError(
        'VALIDATION',
        `claimSpread must be a whole number from 1 to ${MAX_CANDIDATES}`,
      );
    }
    this.#claimSpread = spread;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 10_000;
    this.#machine = options.machine ?? jobMachine;
    this.#log = options.logger ?? silentLogger;
    this.projections = options.liveProjections === true ? new LiveProjections() : null;
    if (!Number.isInteger(this.leaseMs) || this.leaseMs < 1000) {
      throw new RangeError(`leaseMs must be an integer ≥ 1000, got ${this.leaseMs}`);
    }
  }

  /**
   * Calls `listener` with every event this process stored, once its commit succeeded:
   * each stored event is reported by exactly one process (the one whose append stored
   * it), once, and never one a failed commit rolled back. Within a job, events come in
   * `seq` order, except one whose append outcome was unknown: it is reported when that
   * is settled (the next sweep), possibly after later ones.
   */
  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Per-job failures isolated so far (logged and skipped) in sweeps and cascades. */
  get isolatedFailures(): number {
    return this.#isolatedFailures;
  }

  /**
   * Runs `task` in the product's mailbox, then waits until its writes are durable
   * (`store.sync(mark)`: group commit) before the caller hears the answer, and reports
   * the events it stored. The mailbox is free for the next task as soon as this one's
   * writes are applied, so the writes of many callers share one commit.
   */
  async #act<T>(productId: string, task: () => Promise<T>): Promise<T> {
    const from = this.store.mark();
    let result: T;
    try {
      result = await this.#mailboxes.run(productId, task);
    } catch (e) {
      await this.#settle(from).catch(() => {});
      throw e;
    }
    await this.#settle(from);
    return result;
  }

  /**
   * Waits until every write since `from` is durable, then reports the events appended
   * since then. If a commit since `from` failed, those events may be gone: they are
   * settled later by reading them back, and the failure is thrown.
   */
  async #settle(from: number): Promise<void> {
    // An append this process could not confirm is settled at its next operation (or sweep).
    if (this.#uncertain.size > 0) {
      await this.#settleUncertain(SETTLE_PER_OPERATION).catch(() => {});
    }
    try {
      await this.store.sync(from);
    } catch (e) {
      const lost = this.#appended.filter((a) => a.mark >= from);
      this.#appended = this.#appended.filter((a) => a.mark < from);
      for (const a of lost) this.#remember(a.event);
      throw e;
    }
    const ready = this.#appended.filter((a) => a.mark >= from);
    if (ready.length === 0) return;
    this.#appended = this.#appended.filter((a) => a.mark < from);
    for (const a of ready) this.#report(a.event);
  }

  #report(event: EventDoc): void {
    this.projections?.apply(event);
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (e) {
        this.#log.warn({ err: e }, 'event listener threw');
      }
    }
  }

  /** Remembers an appended event (stamped) whose append or commit had an unknown outcome. */
  #remember(event: EventDoc): void {
    if (this.#uncertain.size >= MAX_UNCERTAIN) {
      const oldest = this.#uncertain.keys().next().value;
      if (oldest !== undefined) this.#uncertain.delete(oldest);
      this.#log.warn({ eventId: oldest }, 'too many unsettled event appends; forgetting one');
    }
    this.#uncertain.set(event.id, { jobId: event.jobId, stamp: event.writer ?? '', tries: 0 });
  }

  /**
   * Settles appends with an unknown outcome by reading the events back: ours (our
   * writer stamp) → reported after the next successful commit; someone else's → theirs
   * to report; not there → still pending (whoever appends it reports it).
   */
  async #settleUncertain(limit = Number.POSITIVE_INFINITY): Promise<void> {
    const y = new Yielder();
    let looked = 0;
    for (const [id, entry] of [...this.#uncertain]) {
      if (looked++ >= limit) break;
      await y.next();
      // Taken out while it is looked at, so two settles never both report it.
      if (this.#uncertain.get(id) !== entry) continue;
      this.#uncertain.delete(id);
      let found: Stored<EventDoc> | null;
      try {
        found = await this.store.events.read(entry.jobId, id);
      } catch (e) {
        if (!this.#uncertain.has(id)) this.#uncertain.set(id, entry);
        throw e;
      }
      if (found === null) {
        if (++entry.tries >= SETTLE_TRIES) {
          this.#log.warn(
            { eventId: id, jobId: entry.jobId },
            'an unsettled event append was never found; forgetting it',
          );
        } else if (!this.#uncertain.has(id)) {
          // Back at the end of the line, so the others get their turn.
          this.#uncertain.set(id, entry);
        }
        continue;
      }
      if (found.writer === entry.stamp) {
        const { _etag: _e, ...event } = found;
        this.#appended.push({ event, mark: this.store.mark() });
      }
    }
  }

  /** Appends a stream event stamped with this process as its writer (see `subscribe`). */
  async #append(event: EventDoc): Promise<void> {
    const mark = this.store.mark();
    const stamped: EventDoc = { ...event, writer: `${this.#writer}.${++this.#appends}` };
    let stored: boolean;
    try {
      stored = await this.store.events.append(stamped);
    } catch (e) {
      this.#remember(stamped);
      throw e;
    }
    if (stored) {
      this.#uncertain.delete(event.id);
      this.#appended.push({ event: stamped, mark });
      return;
    }
    // Already stored: by our own earlier append whose answer was lost, or by another.
    const earlier = this.#uncertain.get(event.id);
    if (earlier === undefined) return;
    this.#uncertain.delete(event.id);
    const found = await this.store.events.read(event.jobId, event.id);
    if (found !== null && found.writer === earlier.stamp) {
      const { _etag: _e, ...mine } = found;
      this.#appended.push({ event: mine, mark: this.store.mark() });
    }
  }

  /**
   * Runs one job's step of a loop (sweep, cascade) so that its failure cannot stop the
   * others: logged with the job's id, counted, and swallowed, unless the store itself
   * is unavailable (then the loop ends: every next step would fail the same way).
   */
  async #isolated(
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
      this.#log.error(
        { jobId: job.id, productId: job.productId, err: e },
        `${what} failed for job ${job.id}; skipped`,
      );
    }
  }

  /** Resolves when every queued mailbox task has finished. */
  drain(): Promise<void> {
    return this.#mailboxes.drain();
  }

  // -------------------------------------------------------------------------
  // Submission
  // -------------------------------------------------------------------------

  /**
   * Idempotent submission on `(productId, idempotencyKey)`: a new key creates the job
   * (`created`); the same content returns it (`existing`); different content replaces
   * it while it is `queued` or `blocked` (`superseded`, version + 1) and is an
   * `IDEMPOTENCY_CONFLICT` after that. Deps must name jobs of the product
   * (`UNKNOWN_DEPENDENCY`) and may not close a cycle (`DEPENDENCY_CYCLE`). A job with
   * unmet deps starts `blocked`; with a dep in `dead_letter`, it goes there too.
   */
  async submit(
    productId: string,
    input: SubmitInput,
    actor: string | null = null,
  ): Promise<Result<{ job: Stored<JobDoc>; outcome: SubmitOutcome }>> {
    const parsed = parse(S.SubmitInput, input);
    if (!parsed.ok) return parsed;
    const req = parsed.value;
    const content = contentOf(req);
    const hash = contentHash(content);
    const id = jobIdFor(productId, req.idempotencyKey);
    return this.#act(productId, async () => {
      for (let i = 0; i < MAX_CONFLICTS; i++) {
        const existing = await this.store.jobs.read(productId, id);
        if (existing) {
          if (existing.contentHash === hash) return ok({ job: existing, outcome: 'existing' });
          if (existing.stage !== 'queued' && existing.stage !== 'blocked') {
            return fail(
              'IDEMPOTENCY_CONFLICT',
              `job ${id} with this idempotencyKey is ${existing.stage}; its content can no longer change`,
              { jobId: id, stage: existing.stage },
            );
          }
          return this.#supersede(productId, id, hash, content, actor);
        }
        const checked = await this.#checkDeps(productId, id, content.deps, content.parentId);
        if (!checked.ok) return checked;
        const status = await this.#depsStatus(productId, content.deps, content.depsMode);
        const now = this.clock.now();
        const draft = JobDraft.forNew(
          this.#newDoc(productId, id, req.idempotencyKey, content, hash, now, status.met),
          now,
          actor,
          this.#machine,
        );
        draft.record('submitted', { version: 1 });
        if (status.failedDep)
          draft.send({ type: 'DEPENDENCY_FAILED' }, { dependencyId: status.failedDep });
        let saved: Stored<JobDoc>;
        try {
          saved = await this.store.jobs.create(draft.finalize());
        } catch (e) {
          if (isFleetError(e, 'ALREADY_EXISTS')) continue; // a concurrent submit won: decide again
          throw e;
        }
        saved = await this.#flush(saved, true);
        if (saved.stage === 'blocked') {
          // A dep may have shipped between our read of it and our write: look again.
          saved = (await this.#reevaluate(productId, id)) ?? saved;
        }
        return ok({ job: saved, outcome: 'created' });
      }
      return fail('STORE_UNAVAILABLE', 'submission kept conflicting; try again');
    });
  }

  async #supersede(
    productId: string,
    id: string,
    hash: string,
    content: ReturnType<typeof contentOf>,
    actor: string | null,
  ): Promise<Result<{ job: Stored<JobDoc>; outcome: SubmitOutcome }>> {
    const checked = await this.#checkDeps(productId, id, content.deps, content.parentId);
    if (!checked.ok) return checked;
    let outcome: SubmitOutcome = 'superseded';
    // Filled by the plan when the supersede adds edges (see the validation below).
    const validation: {
      touch: Stored<JobDoc>[];
      previous: Stored<JobDoc> | null;
    } = { touch: [], previous: null };
    const r = await this.#update(productId, id, actor, async (draft) => {
      if (draft.before.contentHash === hash) {
        outcome = 'existing';
        return null;
      }
      if (draft.stage !== 'queued' && draft.stage !== 'blocked') {
        return new FleetError(
          'IDEMPOTENCY_CONFLICT',
          `job ${id} with this idempotencyKey is ${draft.stage}; its content can no longer change`,
          { extra: { jobId: id, stage: draft.stage } },
        );
      }
      outcome = 'superseded';
      validation.touch = [];
      validation.previous = null;
      if (content.deps.some((d) => !draft.before.deps.includes(d))) {
        // New edges may close a cycle together with a supersede racing in another
        // process (each checks the other's old deps before either writes: write skew).
        // Optimistic validation: the jobs the check walked whose deps can change now
        // (queued or blocked: only those can be superseded) are touched (an etag write
        // of the same content), in id order together with our own write, so of two
        // racing supersedes the one that reaches the first shared job second fails its
        // etag, decides again, and sees the cycle. Every other job the check read keeps
        // its document and etag (shipped ones never change; active, failed or dead ones
        // would have to be requeued first, which the check after our write catches).
        const seen = new Map<string, JobLink>();
        const cycle = await findCycle(id, content.deps, async (ids) => {
          const found = await this.#linksOf(productId, ids);
          for (const [jobId, link] of found) seen.set(jobId, link);
          return new Map([...found].map(([jobId, link]) => [jobId, link.deps]));
        });
        if (cycle) {
          return new FleetError(
            'DEPENDENCY_CYCLE',
            `deps would form a cycle: ${cycle.join(' → ')}`,
            { extra: { cycle } },
          );
        }
        const mutable = [...seen.values()]
          .filter((l) => l.id !== id && (l.stage === 'queued' || l.stage === 'blocked'))
          .sort(byId);
        for (const link of mutable.filter((l) => l.id < id)) {
          const job = await this.store.jobs.read(productId, link.id);
          if (job) await this.store.jobs.replace(stripEtag(job), job._etag); // 412 → re-plan
        }
        for (const link of mutable.filter((l) => l.id > id)) {
          const job = await this.store.jobs.read(productId, link.id);
          if (job) validation.touch.push(job);
        }
        validation.previous = draft.before;
      }
      const status = await this.#depsStatus(productId, content.deps, content.depsMode);
      Object.assign(draft.doc, content, { contentHash: hash, version: draft.doc.version + 1 });
      const err = draft.send(
        { type: 'SUPERSEDE', depsMet: status.met, maxRetries: content.retry.max },
        { version: draft.doc.version },
      );
      if (err) return err;
      if (status.failedDep)
        draft.send({ type: 'DEPENDENCY_FAILED' }, { dependencyId: status.failedDep });
      return null;
    });
    if (!r.ok) return r;
    let job = r.value;
    const { touch, previous } = validation;
    if (previous !== null) {
      for (const other of touch) {
        try {
          await this.store.jobs.replace(stripEtag(other), other._etag);
        } catch (e) {
          if (!isFleetError(e, 'PRECONDITION_FAILED', 'NOT_FOUND')) throw e;
          break; // it changed since we read it: the check below looks again
        }
      }
      // Looked at again after our write, so no cycle can survive even a race the
      // touches above do not cover: the later of two racing checks sees both writes.
      const cycle = await findCycle(id, content.deps, (ids) => this.#depsOfMany(productId, ids));
      if (cycle) {
        await this.#restoreContent(productId, previous, hash, actor);
        return fail('DEPENDENCY_CYCLE', `deps would form a cycle: ${cycle.join(' → ')}`, {
          cycle,
        });
      }
    }
    if (job.stage === 'blocked') job = (await this.#reevaluate(productId, id)) ?? job;
    return ok({ job, outcome });
  }

  /** Undoes a supersede whose content is still `hash`: the previous content comes back. */
  async #restoreContent(
    productId: string,
    previous: Stored<JobDoc>,
    hash: string,
    actor: string | null,
  ): Promise<void> {
    await this.#update(productId, previous.id, actor, async (draft) => {
      if (
        draft.doc.contentHash !== hash ||
        (draft.stage !== 'queued' && draft.stage !== 'blocked')
      ) {
        return null;
      }
      const status = await this.#depsStatus(productId, previous.deps, previous.depsMode);
      Object.assign(draft.doc, contentFields(previous), {
        contentHash: previous.contentHash,
        version: draft.doc.version + 1,
      });
      return draft.send(
        { type: 'SUPERSEDE', depsMet: status.met, maxRetries: previous.retry.max },
        { version: draft.doc.version },
      );
    });
  }

  #newDoc(
    productId: string,
    id: string,
    idempotencyKey: string,
    content: ReturnType<typeof contentOf>,
    hash: string,
    now: number,
    depsMet: boolean,
  ): JobDoc {
    const [initial] = initialTransition(this.#machine, { maxRetries: content.retry.max });
    const snapshot = depsMet
      ? initial
      : this.#machine.resolveState({ value: 'blocked', context: initial.context });
    const seq = Math.max(this.#lastSeq + 1, now * 1000);
    this.#lastSeq = seq;
    return {
      id,
      productId,
      idempotencyKey,
      stage: depsMet ? 'queued' : 'blocked',
      ...content,
      checkpoint: null,
      attempt: 0,
      failures: 0,
      leaseEpoch: 0,
      holderFactoryId: null,
      leaseExpiresAt: null,
      notBefore: null,
      deadReason: null,
      lastError: null,
      firstClaimedAt: null,
      usage: { ...ZERO_USAGE },
      run: null,
      createdAt: iso(now),
      updatedAt: iso(now),
      version: 1,
      seq,
      contentHash: hash,
      dueAt: null,
      rev: 0,
      eventSeq: 0,
      outbox: [],
      machineVersion: JOB_MACHINE_VERSION,
      snapshot: persistSnapshot(snapshot, this.#machine),
    };
  }

  /**
   * Deps must exist in the product and must not lead back to `id`; a parent must be
   * another job of the product. Read from index columns, never the documents.
   */
  async #checkDeps(
    productId: string,
    id: string,
    deps: readonly string[],
    parentId: string | null = null,
  ): Promise<Result<true>> {
    if (parentId !== null) {
      if (parentId === id) return fail('VALIDATION', 'parentId: a job cannot be its own parent');
      const [parent] = await this.store.jobs.links(productId, [parentId]);
      if (!parent) {
        return fail('UNKNOWN_DEPENDENCY', `parentId names no job of this product: ${parentId}`, {
          unknown: [parentId],
        });
      }
    }
    const others = deps.filter((d) => d !== id);
    const found = await this.#linksOf(productId, others);
    const missing = others.filter((d) => !found.has(d));
    if (missing.length > 0) {
      return fail('UNKNOWN_DEPENDENCY', `no job of this product has id ${missing.join(', ')}`, {
        unknown: missing,
      });
    }
    const cycle = await findCycle(id, deps, (ids) => this.#depsOfMany(productId, ids));
    if (cycle)
      return fail('DEPENDENCY_CYCLE', `deps would form a cycle: ${cycle.join(' → ')}`, { cycle });
    return ok(true);
  }

  /**
   * Links of the product's jobs among `ids`, by id, from index columns: one store call
   * per {@link LINKS_PER_CALL} ids (a query on Cosmos DB, where a level of a dependency
   * graph then costs one request, not one per job).
   */
  async #linksOf(productId: string, ids: readonly string[]): Promise<Map<string, JobLink>> {
    const out = new Map<string, JobLink>();
    const unique = [...new Set(ids)];
    for (let i = 0; i < unique.length; i += LINKS_PER_CALL) {
      for (const link of await this.store.jobs.links(
        productId,
        unique.slice(i, i + LINKS_PER_CALL),
      ))
        out.set(link.id, link);
    }
    return out;
  }

  /** The deps of each job among `ids` (absent: no such job), from index columns. */
  async #depsOfMany(
    productId: string,
    ids: readonly string[],
  ): Promise<Map<string, readonly string[]>> {
    const links = await this.#linksOf(productId, ids);
    return new Map([...links].map(([id, l]) => [id, l.deps]));
  }

  /** Whether `deps` are met, from their stages (index columns, never the documents). */
  async #depsStatus(
    productId: string,
    deps: readonly string[],
    mode: 'hard' | 'soft',
  ): Promise<DepsStatus> {
    if (deps.length === 0) return { met: true, failedDep: null, missing: [] };
    const links = await this.#linksOf(productId, deps);
    return evaluateDeps(deps, mode, (id) => links.get(id));
  }

  /**
   * The jobs among `jobs` whose deps status calls for a change, found with one store
   * call per product (and per {@link LINKS_PER_CALL} deps): the cheap first look of the
   * blocked-jobs repair and of a dependents cascade.
   */
  async #needingReevaluation(jobs: readonly JobLink[]): Promise<JobLink[]> {
    const byProduct = new Map<string, JobLink[]>();
    for (const j of jobs) {
      if (j.stage === 'shipped' || j.stage === 'dead_letter') continue;
      const list = byProduct.get(j.productId);
      if (list) list.push(j);
      else byProduct.set(j.productId, [j]);
    }
    const out: JobLink[] = [];
    for (const [productId, list] of byProduct) {
      const deps = await this.#linksOf(
        productId,
        list.flatMap((j) => j.deps),
      );
      for (const j of list) {
        const status = evaluateDeps(j.deps, j.depsMode, (id) => deps.get(id));
        if (this.#depsEvent(j.stage, status) !== null) out.push(j);
      }
    }
    return out;
  }

  // -------------------------------------------------------------------------
  // Claim
  // -------------------------------------------------------------------------

  /**
   * Hands the best eligible job to the factory: among the product's `queued` jobs past
   * `notBefore` whose capabilities the factory has, the highest priority, then the
   * oldest (submission sequence). Moves it to `assigned` under a new epoch and opens a
   * run. Returns null when nothing is eligible or the factory is at its `seatLimit`.
   * A job is handed out at most once per epoch, however many claims race.
   */
  async claimNextJob(productId: string, input: ClaimInput): Promise<Result<ClaimGrant | null>> {
    const parsed = parse(S.ClaimInput, input);
    if (!parsed.ok) return parsed;
    const { factoryId } = parsed.value;
    return this.#act(productId, async () => {
      const factory = await this.store.factories.read(productId, factoryId);
      const capabilities = [...(parsed.value.capabilities ?? factory?.capabilities ?? [])].sort();
      if (factory?.seatLimit != null) {
        const held = await this.store.jobs.countHeld(productId, factoryId);
        if (held >= factory.seatLimit) return ok(null);
      }
      // The head of the queue is normally ours (the mailbox serialises this process's
      // claims), so read one candidate (or the spread's worth); after a lost race, more.
      let limit = this.#claimSpread;
      for (let round = 0; round < MAX_CONFLICTS; round++) {
        const now = this.clock.now();
        const candidates = await this.store.jobs.claimCandidates({
          productId,
          capabilities,
          now: iso(now),
          limit,
        });
        if (candidates.length === 0) return ok(null);
        let readable = 0;
        for (const candidate of this.#spread(candidates)) {
          const won = await this.#tryClaim(candidate, factoryId, now);
          if (won === 'skipped') continue;
          readable++;
          if (won === null) continue;
          if (factory?.seatLimit != null && !(await this.#keepsSeat(won, factory.seatLimit))) {
            // Over the limit, and this grant is the one to go: hand it back as if it had
            // never been made (no attempt counted, no wall clock started).
            await this.#update(productId, won.job.id, factoryId, (draft) =>
              draft.send(
                {
                  type: 'GIVE_BACK',
                  factoryId,
                  leaseEpoch: won.lease.leaseEpoch,
                  now: draft.now,
                  firstClaimedAt: won.firstClaimedBefore,
                },
                { reason: 'seat_limit' },
              ),
            );
            return ok(null);
          }
          const { firstClaimedBefore: _f, ...grant } = won;
          return ok(grant);
        }
        // Only unreadable jobs at the head: look further down the queue next round.
        if (readable === 0) {
          if (limit >= MAX_CANDIDATES) return ok(null);
          limit = Math.min(limit * 2, MAX_CANDIDATES);
        } else {
          limit = Math.max(limit, CLAIM_CANDIDATES);
        }
      }
      return ok(null);
    });
  }

  /**
   * After a grant to a factory with a seat limit: true when the factory holds no more
   * than its limit, or this grant is among the `limit` it keeps. The count is not atomic
   * with the claim, so two processes may grant the last seat at once; then both count
   * one too many, and both keep the same jobs (the oldest submissions, an order every
   * process sees alike), so exactly one gives its grant back and one grant stands.
   * (A process that counted before the other's grant landed keeps its own; if its job
   * is the newer one, the factory holds one lease over its limit until one ends.)
   */
  async #keepsSeat(won: ClaimGrant, seatLimit: number): Promise<boolean> {
    const { productId, holderFactoryId } = won.job;
    const held = await this.store.jobs.countHeld(productId, holderFactoryId ?? '');
    if (held <= seatLimit) return true;
    const keep = await this.store.jobs.heldBy(productId, holderFactoryId ?? '', seatLimit);
    return keep.some((k) => k.id === won.job.id);
  }

  /**
   * The order in which to try candidates (best first): with a spread of `k`, one of the
   * first `k` of the best priority, chosen at random, goes first; the rest keep their order.
   */
  #spread(candidates: Stored<JobDoc>[]): Stored<JobDoc>[] {
    if (this.#claimSpread === 1 || candidates.length < 2) return candidates;
    const best = candidates[0]?.priority;
    let pool = 1;
    while (
      pool < candidates.length &&
      pool < this.#claimSpread &&
      candidates[pool]?.priority === best
    ) {
      pool++;
    }
    const pick = Math.floor(this.#random() * pool);
    if (pick === 0) return candidates;
    const order = [...candidates];
    const [chosen] = order.splice(pick, 1);
    return chosen === undefined ? candidates : [chosen, ...order];
  }

  /**
   * One claim attempt at the candidate's etag; null if it was lost (or the job turned
   * out not to be claimable), `skipped` if it cannot be processed at all.
   */
  async #tryClaim(
    candidate: Stored<JobDoc>,
    factoryId: string,
    now: number,
  ): Promise<(ClaimGrant & { firstClaimedBefore: number | null }) | 'skipped' | null> {
    let draft: JobDraft;
    try {
      if (candidate.outbox.length > 0) await this.#flush(candidate, false);
      draft = new JobDraft(candidate, now, factoryId, this.#machine);
    } catch (e) {
      if (isFleetError(e, ...STORE_DOWN)) throw e;
      // One unreadable job must not stop the rest of the queue: skip it, loudly.
      this.#isolatedFailures++;
      this.#log.error(
        { jobId: candidate.id, productId: candidate.productId, err: e },
        `claim skipped job ${candidate.id}: it cannot be processed`,
      );
      return 'skipped';
    }
    const firstClaimedBefore = draft.context.firstClaimedAt;
    const exceeded = exceededBudget(
      draft.doc.budget,
      draft.doc.usage,
      draft.context.firstClaimedAt,
      now,
    );
    // A queued job with unmet deps is never handed out, even if the notification that
    // should have blocked it was lost: it is blocked (or dead) now instead.
    const status =
      exceeded || candidate.deps.length === 0
        ? null
        : await this.#depsStatus(candidate.productId, candidate.deps, candidate.depsMode);
    if (exceeded) {
      // Its wall budget ran out while it waited: it will not be handed out again.
      draft.send({ type: 'BUDGET_EXCEEDED' }, { exceeded });
    } else if (status?.failedDep) {
      draft.send({ type: 'DEPENDENCY_FAILED' }, { dependencyId: status.failedDep });
    } else if (status && !status.met) {
      draft.send({ type: 'DEPS_UNMET' });
    } else if (draft.send({ type: 'CLAIM', factoryId, now, expiresAt: now + this.leaseMs })) {
      return null;
    }
    let saved: Stored<JobDoc>;
    try {
      saved = await this.store.jobs.replace(draft.finalize(), candidate._etag);
    } catch (e) {
      if (isFleetError(e, 'PRECONDITION_FAILED', 'NOT_FOUND')) return null;
      throw e;
    }
    saved = await this.#flush(saved, true);
    if (saved.stage !== 'assigned') return null;
    const run = saved.run;
    return {
      job: saved,
      lease: {
        leaseEpoch: saved.leaseEpoch,
        expiresAt: saved.leaseExpiresAt ?? iso(now + this.leaseMs),
      },
      run: { id: run?.id ?? '', attempt: run?.attempt ?? saved.attempt },
      firstClaimedBefore,
    };
  }

  // -------------------------------------------------------------------------
  // Worker calls (fenced)
  // -------------------------------------------------------------------------

  /**
   * A fenced stage move (`PATCH /fleet/jobs/:id`). A call whose `leaseEpoch` is not the
   * job's epoch, or whose `factoryId` is not the holder, is `FENCED` (checked before the
   * lifecycle); a move the machine does not allow is `INVALID_TRANSITION`; either way
   * nothing changes. Checkpoint, insights and artifacts in the same call are applied
   * with the move or not at all. `ifMatch` makes the write conditional on the job's etag.
   */
  async transition(
    productId: string,
    jobId: string,
    input: PatchInput,
    options: Conditional = {},
  ): Promise<Result<Stored<JobDoc>>> {
    const parsed = parse(S.PatchInput, input);
    if (!parsed.ok) return parsed;
    const p = parsed.value;
    return this.#workerCall(
      productId,
      jobId,
      p.factoryId,
      (draft) => {
        if (p.checkpoint || p.insights || p.artifacts) {
          const err = this.#applyProgress(draft, p);
          if (err) return err;
        }
        const base = { factoryId: p.factoryId, leaseEpoch: p.leaseEpoch, now: draft.now };
        draft.setOutcome({
          ...(p.result ? { result: p.result } : {}),
          ...(p.verifyResult ? { verifyResult: p.verifyResult } : {}),
          ...(p.error ? { error: p.error } : {}),
        });
        let err: FleetError | null;
        if (p.to === 'failed') {
          const retry = draft.doc.retry;
          const retryable = isRetryable(retry, p.error?.class);
          const delay = backoffDelay(retry, draft.context.failures + 1, this.#random);
          err = draft.send({ type: 'FAIL', ...base, retryable, retryAt: draft.now + delay });
        } else {
          err = draft.send({ type: MOVE_EVENT[p.to], ...base });
        }
        if (err) return err;
        this.#checkBudget(draft);
        return null;
      },
      options,
    );
  }

  /**
   * A fenced write that moves no stage: checkpoint, insight increments, artifact
   * pointers. Same fencing as `transition`; a budget exceeded by the reported insights
   * sends the job to `dead_letter` (reason `budget_exceeded`) and fences the holder out.
   * With `seq`, the holder's call at or below the run's last applied seq is a retry of an
   * applied call: it answers the job unchanged and applies nothing.
   */
  async recordProgress(
    productId: string,
    jobId: string,
    input: ProgressInput,
    options: Conditional = {},
  ): Promise<Result<Stored<JobDoc>>> {
    const parsed = parse(S.ProgressInput, input);
    if (!parsed.ok) return parsed;
    const p = parsed.value;
    return this.#workerCall(
      productId,
      jobId,
      p.factoryId,
      (draft) => {
        const run = draft.doc.run;
        const mine =
          draft.doc.leaseEpoch === p.leaseEpoch && draft.doc.holderFactoryId === p.factoryId;
        if (mine && p.seq !== undefined && run && p.seq <= (run.progressSeq ?? 0)) return null; // a retry
        const err = this.#applyProgress(draft, p);
        if (err) return err;
        if (p.seq !== undefined && draft.doc.run)
          draft.doc.run = { ...draft.doc.run, progressSeq: p.seq };
        this.#checkBudget(draft);
        return null;
      },
      options,
    );
  }

  /** Extends the lease to now + `extendMs` (default `leaseMs`); fenced. */
  async renewLease(
    productId: string,
    jobId: string,
    input: RenewInput,
    options: Conditional = {},
  ): Promise<Result<{ leaseEpoch: number; expiresAt: string }>> {
    const parsed = parse(S.RenewInput, input);
    if (!parsed.ok) return parsed;
    const p = parsed.value;
    const r = await this.#workerCall(
      productId,
      jobId,
      p.factoryId,
      (draft) =>
        draft.send({
          type: 'RENEW',
          factoryId: p.factoryId,
          leaseEpoch: p.leaseEpoch,
          now: draft.now,
          expiresAt: draft.now + (p.extendMs ?? this.leaseMs),
        }),
      options,
    );
    if (!r.ok) return r;
    return ok({ leaseEpoch: r.value.leaseEpoch, expiresAt: r.value.leaseExpiresAt ?? '' });
  }

  /** Gives the job back: `queued` (or `blocked`), epoch + 1, checkpoint kept; fenced. */
  async releaseLease(
    productId: string,
    jobId: string,
    input: ReleaseInput,
    options: Conditional = {},
  ): Promise<Result<Stored<JobDoc>>> {
    const parsed = parse(S.ReleaseInput, input);
    if (!parsed.ok) return parsed;
    const p = parsed.value;
    return this.#workerCall(
      productId,
      jobId,
      p.factoryId,
      async (draft) => {
        const status = await this.#depsStatus(productId, draft.doc.deps, draft.doc.depsMode);
        return draft.send(
          {
            type: 'RELEASE',
            factoryId: p.factoryId,
            leaseEpoch: p.leaseEpoch,
            now: draft.now,
            depsMet: status.met,
          },
          { reason: p.reason ?? null },
        );
      },
      options,
    );
  }

  #applyProgress(draft: JobDraft, p: ProgressInput): FleetError | null {
    const err = draft.send({
      type: 'RECORD',
      factoryId: p.factoryId,
      leaseEpoch: p.leaseEpoch,
      now: draft.now,
    });
    if (err) return err;
    if (p.checkpoint) {
      draft.doc.checkpoint = { ...(draft.doc.checkpoint ?? {}), ...p.checkpoint };
      draft.record('checkpoint_saved', { factoryId: p.factoryId });
    }
    if (p.insights) {
      const { model, estimated: _estimated, ...increments } = p.insights;
      const totals = [addUsage(draft.doc.usage, increments)];
      if (draft.doc.run) totals.push(addUsage(draft.doc.run.insights, increments));
      if (!totals.every((t) => usageIsRepresentable(t, S.MAX_COST_TOTAL))) {
        return new FleetError(
          'VALIDATION',
          `insights: the totals would pass ${Number.MAX_SAFE_INTEGER} (or ${S.MAX_COST_TOTAL} USD); increments are refused past that`,
        );
      }
      draft.addInsights(increments, model);
      const run = draft.doc.run;
      draft.record('insights_recorded', {
        factoryId: p.factoryId,
        runId: run?.id ?? '',
        attempt: run?.attempt ?? draft.doc.attempt,
        insights: { ...ZERO_USAGE, ...increments },
      });
    }
    for (const a of p.artifacts ?? []) {
      const artifact: ArtifactDoc = {
        id: `${draft.doc.id}.a${draft.doc.leaseEpoch}.${contentHash(a.name).slice(0, 16)}`,
        productId: draft.doc.productId,
        jobId: draft.doc.id,
        name: a.name,
        uri: a.uri,
        contentType: a.contentType ?? null,
        bytes: a.bytes ?? null,
        sha256: a.sha256 ?? null,
        leaseEpoch: draft.doc.leaseEpoch,
        factoryId: p.factoryId,
        createdAt: iso(draft.now),
        rev: draft.doc.rev,
      };
      draft.effects.push({ kind: 'artifact', artifact });
      draft.record('artifact_recorded', {
        factoryId: p.factoryId,
        artifactId: artifact.id,
        name: a.name,
        uri: a.uri,
      });
    }
    return null;
  }

  /** Token and cost limits, checked after insights arrive (a shipped job stays shipped). */
  #checkBudget(draft: JobDraft): void {
    if (draft.stage === 'shipped' || draft.stage === 'dead_letter') return;
    const exceeded = exceededBudget(
      draft.doc.budget,
      draft.doc.usage,
      draft.context.firstClaimedAt,
      draft.now,
    );
    if (exceeded) draft.send({ type: 'BUDGET_EXCEEDED' }, { exceeded });
  }

  /** A worker call: `#workerUpdate` in the product's mailbox, answered once durable. */
  #workerCall(
    productId: string,
    jobId: string,
    actor: string | null,
    plan: (draft: JobDraft) => FleetError | null | Promise<FleetError | null>,
    options: Conditional = {},
  ): Promise<Result<Stored<JobDoc>>> {
    return this.#act(productId, () => this.#workerUpdate(productId, jobId, actor, plan, options));
  }

  /**
   * `#update` for worker calls: a job past its wall budget goes to `dead_letter` first
   * (that write is kept) and the caller, whoever it is, is `FENCED`: its lease is over.
   */
  async #workerUpdate(
    productId: string,
    jobId: string,
    actor: string | null,
    plan: (draft: JobDraft) => FleetError | null | Promise<FleetError | null>,
    options: Conditional = {},
  ): Promise<Result<Stored<JobDoc>>> {
    let outOfTime: FleetError | null = null;
    const r = await this.#update(
      productId,
      jobId,
      actor,
      (draft) => {
        outOfTime = null;
        const { budget } = draft.doc;
        if (budget?.wall && draft.stage !== 'shipped' && draft.stage !== 'dead_letter') {
          const firstClaimedAt = draft.context.firstClaimedAt;
          if (exceededBudget({ wall: budget.wall }, ZERO_USAGE, firstClaimedAt, draft.now)) {
            draft.send({ type: 'BUDGET_EXCEEDED' }, { exceeded: 'wall' });
            outOfTime = new FleetError(
              'FENCED',
              `job ${jobId} ran out of its wall budget (${budget.wall}); its lease is over`,
              { extra: { leaseEpoch: draft.doc.leaseEpoch } },
            );
            return null;
          }
        }
        return plan(draft);
      },
      options,
    );
    return r.ok && outOfTime ? { ok: false, error: outOfTime } : r;
  }

  // -------------------------------------------------------------------------
  // Factories
  // -------------------------------------------------------------------------

  /** Registers the factory on its first beat and records every later one. */
  async heartbeat(
    productId: string,
    input: HeartbeatInput,
  ): Promise<Result<FactoryDoc & { stale: boolean }>> {
    const parsed = parse(S.HeartbeatInput, input);
    if (!parsed.ok) return parsed;
    const h = parsed.value;
    const from = this.store.mark();
    for (let i = 0; i < MAX_CONFLICTS; i++) {
      const now = iso(this.clock.now());
      const cur = await this.store.factories.read(productId, h.factoryId);
      const doc: FactoryDoc = {
        id: h.factoryId,
        productId,
        factoryId: h.factoryId,
        descriptor: h.descriptor ?? cur?.descriptor ?? {},
        capabilities: [...new Set(h.capabilities)].sort(),
        health: h.health,
        load: h.load ?? 0,
        seatLimit: h.seatLimit === undefined ? (cur?.seatLimit ?? null) : h.seatLimit,
        heartbeatIntervalMs:
          h.heartbeatIntervalMs ?? cur?.heartbeatIntervalMs ?? this.heartbeatIntervalMs,
        lastHeartbeatAt: now,
        registeredAt: cur?.registeredAt ?? now,
      };
      try {
        const saved = cur
          ? await this.store.factories.replace(doc, cur._etag)
          : await this.store.factories.create(doc);
        await this.store.sync(from);
        return ok({ ...saved, stale: false });
      } catch (e) {
        if (isFleetError(e, 'PRECONDITION_FAILED', 'ALREADY_EXISTS', 'NOT_FOUND')) continue;
        throw e;
      }
    }
    return fail('STORE_UNAVAILABLE', 'heartbeat kept conflicting; try again');
  }

  /** True when a factory missed three heartbeats. */
  isStale(
    factory: Pick<FactoryDoc, 'lastHeartbeatAt' | 'heartbeatIntervalMs'>,
    now = this.clock.now(),
  ): boolean {
    return now - ms(factory.lastHeartbeatAt) > 3 * factory.heartbeatIntervalMs;
  }

  /** The product's factories, each with a derived `stale`. */
  async listFactories(
    productId: string,
    page: { limit?: number; cursor?: string | null } = {},
  ): Promise<Result<Page<FactoryDoc & { stale: boolean }>>> {
    const now = this.clock.now();
    const r = await this.store.factories.list(productId, {
      limit: page.limit ?? 50,
      cursor: page.cursor ?? null,
    });
    return ok({
      items: r.items.map((f) => ({ ...stripEtag(f), stale: this.isStale(f, now) })),
      nextCursor: r.nextCursor,
    });
  }

  // -------------------------------------------------------------------------
  // Supervisor work
  // -------------------------------------------------------------------------

  /**
   * Reaps leases that expired at or before `now`: each job goes back to `queued` (or
   * `blocked` if its deps are now unmet) with epoch + 1 and its checkpoint, or to
   * `dead_letter` (reason `lease_expired`) if that was its last allowed attempt.
   * Idempotent: a second run finds nothing. Returns how many were reaped.
   */
  async reapExpiredLeases(now = this.clock.now()): Promise<number> {
    return (await this.#sweepWith(now, { lease: true, retry: false }, false)).reaped;
  }

  /** Moves `failed` jobs whose backoff has passed back to `queued` (or `blocked`). */
  async retryDue(now = this.clock.now()): Promise<number> {
    return (await this.#sweepWith(now, { lease: false, retry: true }, false)).retried;
  }

  /**
   * One supervisor sweep: due timers (expired leases, due retries, budgets), outbox
   * repair, a slice of the blocked jobs re-checked (repairing a notification a crash
   * lost; see {@link BLOCKED_REPAIRS_PER_SWEEP}), and event appends with an unknown
   * outcome settled. Every write is etag-guarded and idempotent, so sweeps may run in
   * every process at once. A job whose step fails is logged, counted (`failedJobs`) and
   * skipped; the sweep goes on. It yields to the event loop as it goes.
   */
  async sweep(now = this.clock.now()): Promise<SweepReport> {
    return this.#sweepWith(now, { lease: true, retry: true }, true);
  }

  async #sweepWith(
    now: number,
    kinds: { lease: boolean; retry: boolean },
    repair: boolean,
  ): Promise<SweepReport> {
    const from = this.store.mark();
    const report = emptyReport();
    try {
      await this.#sweepDue(now, kinds, report);
      if (repair) {
        await this.#repairOutboxes(report);
        await this.#repairBlocked(report);
        await this.#settleUncertain();
      }
    } catch (e) {
      await this.#settle(from).catch(() => {});
      throw e;
    }
    await this.#settle(from);
    return report;
  }

  async #sweepDue(
    now: number,
    kinds: { lease: boolean; retry: boolean },
    report: SweepReport,
  ): Promise<void> {
    const y = new Yielder();
    let after: { dueAt: string; productId: string; id: string } | undefined;
    for (;;) {
      const batch = await this.store.jobs.due({
        now: iso(now),
        limit: SWEEP_BATCH,
        ...(after ? { after } : {}),
      });
      for (const job of batch) {
        after = { dueAt: job.dueAt ?? iso(now), productId: job.productId, id: job.id };
        await y.next();
        await this.#isolated(
          job,
          'the sweep',
          () =>
            this.#mailboxes.run(job.productId, () =>
              this.#processDue(job.productId, job.id, now, kinds, report),
            ),
          report,
        );
      }
      if (batch.length < SWEEP_BATCH) break;
    }
  }

  /** Carries out pending outboxes (a follow-up a crash or a store fault cut off). */
  async #repairOutboxes(report: SweepReport): Promise<void> {
    const y = new Yielder();
    let budget = OUTBOX_REPAIRS_PER_SWEEP;
    const seen = new Set<string>();
    while (budget > 0) {
      const pending = await this.store.jobs.withOutbox({ limit: Math.min(budget, SWEEP_BATCH) });
      let progressed = 0;
      for (const job of pending) {
        const key = `${job.productId}\u0000${job.id}`;
        if (seen.has(key)) continue;
        seen.add(key);
        budget--;
        await y.next();
        await this.#isolated(
          job,
          'outbox repair',
          () =>
            this.#mailboxes.run(job.productId, async () => {
              const cur = await this.store.jobs.read(job.productId, job.id);
              if (cur && cur.outbox.length > 0) {
                await this.#flush(cur, true);
                report.repaired++;
                progressed++;
              }
            }),
          report,
        );
      }
      if (pending.length < SWEEP_BATCH || progressed === 0) break;
    }
  }

  /** Re-checks the next slice of blocked jobs against their deps (see the constant). */
  async #repairBlocked(report: SweepReport): Promise<void> {
    const y = new Yielder();
    let cursor = this.#blockedCursor;
    let budget = BLOCKED_REPAIRS_PER_SWEEP;
    while (budget > 0) {
      const page = await this.store.jobs.listByStage({
        stage: 'blocked',
        limit: Math.min(budget, SWEEP_BATCH),
        cursor,
      });
      for (const link of await this.#needingReevaluation(page.items)) {
        await y.next();
        await this.#isolated(
          link,
          'blocked-job repair',
          async () => {
            const after = await this.#mailboxes.run(link.productId, () =>
              this.#reevaluate(link.productId, link.id),
            );
            if (after && after.stage !== 'blocked') report.unblocked++;
          },
          report,
        );
      }
      budget -= page.items.length;
      cursor = page.nextCursor;
      if (cursor === null) break;
    }
    this.#blockedCursor = cursor;
  }

  async #processDue(
    productId: string,
    jobId: string,
    now: number,
    kinds: { lease: boolean; retry: boolean },
    report: SweepReport,
  ): Promise<void> {
    let did: keyof SweepReport | null = null;
    const r = await this.#update(
      productId,
      jobId,
      'supervisor',
      async (draft) => {
        did = null;
        const doc = draft.doc;
        // Any exceeded limit ends the job (tokens or cost may have passed too).
        const exceeded = exceededBudget(doc.budget, doc.usage, draft.context.firstClaimedAt, now);
        if (exceeded !== null && draft.stage !== 'shipped' && draft.stage !== 'dead_letter') {
          if (!draft.send({ type: 'BUDGET_EXCEEDED' }, { exceeded })) did = 'budgetExceeded';
          return null;
        }
        if (
          kinds.lease &&
          ACTIVE.has(draft.stage) &&
          doc.leaseExpiresAt !== null &&
          ms(doc.leaseExpiresAt) <= now
        ) {
          const status = await this.#depsStatus(productId, doc.deps, doc.depsMode);
          if (!draft.send({ type: 'LEASE_EXPIRED', now, depsMet: status.met })) did = 'reaped';
        } else if (
          kinds.retry &&
          draft.stage === 'failed' &&
          (doc.notBefore === null || ms(doc.notBefore) <= now)
        ) {
          const status = await this.#depsStatus(productId, doc.deps, doc.depsMode);
          if (!draft.send({ type: 'RETRY_DUE', now, depsMet: status.met })) did = 'retried';
        }
        return null;
      },
      { now },
    );
    if (!r.ok && !isFleetError(r.error, 'NOT_FOUND')) throw r.error;
    if (r.ok && did !== null) report[did as 'reaped' | 'retried' | 'budgetExceeded']++;
  }

  // -------------------------------------------------------------------------
  // Admin
  // -------------------------------------------------------------------------

  /** `dead_letter` or `failed` → `queued` (or `blocked`), retry count and budgets reset. */
  async requeue(
    productId: string,
    jobId: string,
    actor: string | null = 'admin',
    options: Conditional = {},
  ): Promise<Result<Stored<JobDoc>>> {
    return this.#act(productId, () =>
      this.#update(
        productId,
        jobId,
        actor,
        async (draft) => {
          const status = await this.#depsStatus(productId, draft.doc.deps, draft.doc.depsMode);
          const err = draft.send({ type: 'REQUEUE', depsMet: status.met });
          if (err) return err;
          draft.doc.usage = { ...ZERO_USAGE };
          draft.doc.lastError = null;
          return null;
        },
        options,
      ),
    );
  }

  /** Any non-terminal stage → `dead_letter` (reason `cancelled`); the holder is fenced out. */
  async cancel(
    productId: string,
    jobId: string,
    reason: string | null = null,
    actor: string | null = 'admin',
    options: Conditional = {},
  ): Promise<Result<Stored<JobDoc>>> {
    return this.#act(productId, () =>
      this.#update(
        productId,
        jobId,
        actor,
        (draft) => draft.send({ type: 'CANCEL' }, { reason }),
        options,
      ),
    );
  }

  // -------------------------------------------------------------------------
  // Reads
  // -------------------------------------------------------------------------

  /** One job of the product, or NOT_FOUND (also for another product's job). */
  async getJob(productId: string, jobId: string): Promise<Result<Stored<JobDoc>>> {
    await this.store.sync(); // never show a change that is not durable yet
    const job = await this.store.jobs.read(productId, jobId);
    return job ? ok(job) : fail('NOT_FOUND', `no job ${jobId}`);
  }

  /** The product's job submitted under `idempotencyKey`, or NOT_FOUND (a point read: ids derive from keys). */
  async findByIdempotencyKey(
    productId: string,
    idempotencyKey: string,
  ): Promise<Result<Stored<JobDoc>>> {
    return this.getJob(productId, jobIdFor(productId, idempotencyKey));
  }

  /** The product's jobs, newest first, optionally of one stage; `view` and `maxBytes` as in the port's `jobs.list`. */
  async listJobs<V extends JobListView = 'full'>(
    productId: string,
    q: { stage?: Stage; limit?: number; cursor?: string | null; view?: V; maxBytes?: number } = {},
  ): Promise<Result<Page<Stored<JobOfView<V>>>>> {
    return this.#guardRead(() =>
      this.store.jobs.list<V>({
        productId,
        limit: q.limit ?? 50,
        cursor: q.cursor ?? null,
        ...(q.stage ? { stage: q.stage } : {}),
        view: q.view,
        maxBytes: q.maxBytes,
      }),
    );
  }

  /** The job's runs in attempt order. */
  async listRuns(
    productId: string,
    jobId: string,
    q: { limit?: number; cursor?: string | null } = {},
  ): Promise<Result<Page<Stored<RunDoc>>>> {
    return this.#pageOfJob(productId, jobId, q, this.store.runs);
  }

  /** The job's artifact pointers. */
  async listArtifacts(
    productId: string,
    jobId: string,
    q: { limit?: number; cursor?: string | null } = {},
  ): Promise<Result<Page<Stored<ArtifactDoc>>>> {
    return this.#pageOfJob(productId, jobId, q, this.store.artifacts);
  }

  /** A page of a job-partitioned list (runs, artifacts), once the job's outbox is settled. */
  async #pageOfJob<T>(
    productId: string,
    jobId: string,
    q: { limit?: number; cursor?: string | null },
    container: { list(jobId: string, q: PageRequest): Promise<Page<T>> },
  ): Promise<Result<Page<T>>> {
    const job = await this.#settled(productId, jobId);
    if (!job) return fail('NOT_FOUND', `no job ${jobId}`);
    return this.#guardRead(() =>
      container.list(jobId, { limit: q.limit ?? 50, cursor: q.cursor ?? null }),
    );
  }

  /**
   * The job's event stream in `seq` order (1, 2, 3... no gap). `cursor` is the last
   * seq seen. Pending outbox events are written first, so the stream is complete.
   */
  async listEvents(
    productId: string,
    jobId: string,
    q: { limit?: number; cursor?: string | null } = {},
  ): Promise<Result<Page<EventDoc>>> {
    const job = await this.#settled(productId, jobId);
    if (!job) return fail('NOT_FOUND', `no job ${jobId}`);
    // A cursor is the last seq seen, written in decimal: `1e3`, `0x2` or ` 1` are not.
    const afterSeq = q.cursor == null ? 0 : DECIMAL.test(q.cursor) ? Number(q.cursor) : -1;
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0)
      return fail('VALIDATION', 'cursor: not a cursor of this list');
    const limit = q.limit ?? 50;
    const items = (await this.store.events.list(jobId, { afterSeq, limit })).map(publicEvent);
    const last = items.at(-1);
    return ok({ items, nextCursor: items.length === limit && last ? String(last.seq) : null });
  }

  /** Reads a job of the product, first repairing its outbox if a follow-up is pending. */
  async #settled(productId: string, jobId: string): Promise<Stored<JobDoc> | null> {
    await this.store.sync(); // never show a change that is not durable yet
    const job = await this.store.jobs.read(productId, jobId);
    if (!job || job.outbox.length === 0) return job;
    return this.#act(productId, async () => {
      const cur = await this.store.jobs.read(productId, jobId);
      return cur && cur.outbox.length > 0 ? this.#flush(cur, true) : cur;
    });
  }

  async #guardRead<T>(read: () => Promise<T>): Promise<Result<T>> {
    try {
      await this.store.sync(); // never show a change that is not durable yet
      return ok(await read());
    } catch (e) {
      if (isFleetError(e, 'VALIDATION')) return { ok: false, error: e };
      throw e;
    }
  }

  // -------------------------------------------------------------------------
  // The write path
  // -------------------------------------------------------------------------

  /**
   * Read → decide (`plan` on a fresh draft) → etag write → follow-up, retried on
   * conflict. `plan` returns an error to abort (nothing is written) or null; a draft
   * that accepted nothing is not written. Must run inside the product's mailbox.
   */
  async #update(
    productId: string,
    jobId: string,
    actor: string | null,
    plan: (draft: JobDraft) => FleetError | null | Promise<FleetError | null>,
    options: { ifMatch?: string; now?: number } = {},
  ): Promise<Result<Stored<JobDoc>>> {
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      const cur = await this.store.jobs.read(productId, jobId);
      if (!cur) return fail('NOT_FOUND', `no job ${jobId}`);
      if (options.ifMatch !== undefined && cur._etag !== options.ifMatch) {
        return fail(
          'PRECONDITION_FAILED',
          `job ${jobId} has changed since ETag ${options.ifMatch}`,
        );
      }
      if (cur.outbox.length > 0) await this.#flush(cur, false);
      let draft: JobDraft;
      try {
        draft = new JobDraft(cur, options.now ?? this.clock.now(), actor, this.#machine);
      } catch (e) {
        if (isFleetError(e)) return { ok: false, error: e };
        throw e;
      }
      let err: FleetError | null;
      try {
        err = await plan(draft);
      } catch (e) {
        // A plan's own etag-guarded side write lost a race: decide again from scratch.
        if (isFleetError(e, 'PRECONDITION_FAILED')) continue;
        throw e;
      }
      if (err) return { ok: false, error: err };
      if (!draft.changed) return ok(cur);
      let saved: Stored<JobDoc>;
      try {
        saved = await this.store.jobs.replace(draft.finalize(), cur._etag);
      } catch (e) {
        if (isFleetError(e, 'PRECONDITION_FAILED')) continue;
        if (isFleetError(e, 'NOT_FOUND')) return fail('NOT_FOUND', `no job ${jobId}`);
        throw e;
      }
      return ok(await this.#flush(saved, true));
    }
    return fail('STORE_UNAVAILABLE', `job ${jobId} kept changing under us; try again`);
  }

  /**
   * Carries out a job's outbox (idempotently: events by deterministic id, run and lease
   * versions newest-wins, artifacts by id, dependents re-evaluated), then, if `clear`,
   * empties the outbox with an etag write. Losing that write is fine: whoever wrote the
   * job flushed this outbox before writing (see `#update`).
   */
  async #flush(job: Stored<JobDoc>, clear: boolean): Promise<Stored<JobDoc>> {
    for (const effect of job.outbox) await this.#carryOut(effect, job);
    if (!clear || job.outbox.length === 0) return job;
    try {
      return await this.store.jobs.replace({ ...stripEtag(job), outbox: [] }, job._etag);
    } catch (e) {
      if (isFleetError(e, 'PRECONDITION_FAILED', 'NOT_FOUND')) return job;
      throw e;
    }
  }

  async #carryOut(effect: OutboxEffect, job: Stored<JobDoc>): Promise<void> {
    switch (effect.kind) {
      case 'event':
        // Reported once durable, by this process only if this process stored it.
        return this.#append(effect.event);
      case 'run':
        return this.#putNewer(this.store.runs, effect.run, effect.run.jobId, opened(job));
      case 'lease':
        // The lease document of a job's first claim is (almost always) new too.
        return this.#putNewer(
          this.store.leases,
          effect.lease,
          effect.lease.jobId,
          opened(job) && job.attempt === 1,
        );
      case 'artifact':
        // Newest wins (by the job write that recorded it), like the events say.
        return this.#putNewer(
          this.store.artifacts,
          { ...effect.artifact, rev: effect.artifact.rev ?? job.rev },
          effect.artifact.jobId,
          true,
        );
      case 'notifyDependents': {
        // Each dependent is re-checked from index columns; only one whose deps status
        // changed is read and written. The loop yields to the event loop as it goes,
        // and one dependent that cannot be processed does not stop the others (the
        // blocked-jobs repair of a later sweep retries it).
        const dependents = await this.store.jobs.dependents(job.productId, effect.jobId);
        const y = new Yielder();
        for (let i = 0; i < dependents.length; i += SWEEP_BATCH) {
          const slice = dependents.slice(i, i + SWEEP_BATCH);
          for (const d of await this.#needingReevaluation(slice)) {
            await y.next();
            await this.#isolated(d, 'dependency re-evaluation', () =>
              this.#reevaluate(d.productId, d.id),
            );
          }
        }
        return;
      }
    }
  }

  /**
   * Writes a derived document unless the store already has the same or a newer `rev`.
   * `likelyNew`: try `create` before reading (one store call instead of two when the
   * document does not exist yet); if it does exist, the read-and-compare path decides.
   */
  async #putNewer<T extends { id: string; rev?: number }>(
    container: {
      read(pk: string, id: string): Promise<Stored<T> | null>;
      create(doc: T): Promise<Stored<T>>;
      replace(doc: T, etag: string): Promise<Stored<T>>;
    },
    doc: T,
    partitionKey: string,
    likelyNew = false,
  ): Promise<void> {
    if (likelyNew) {
      try {
        await container.create(doc);
        return;
      } catch (e) {
        if (!isFleetError(e, 'ALREADY_EXISTS')) throw e;
      }
    }
    for (let i = 0; i < MAX_CONFLICTS; i++) {
      const cur = await container.read(partitionKey, doc.id);
      try {
        if (!cur) await container.create(doc);
        else if ((cur.rev ?? -1) < (doc.rev ?? -1)) await container.replace(doc, cur._etag);
        return;
      } catch (e) {
        if (isFleetError(e, 'ALREADY_EXISTS', 'PRECONDITION_FAILED', 'NOT_FOUND')) continue;
        throw e;
      }
    }
    throw new FleetError('STORE_UNAVAILABLE', `could not write ${doc.id}: too many conflicts`);
  }

  /** The machine event, if any, that a job's deps status calls for in `stage`. */
  #depsEvent(
    stage: Stage,
    status: DepsStatus,
  ): 'DEPENDENCY_FAILED' | 'DEPS_MET' | 'DEPS_UNMET' | null {
    if (stage === 'shipped' || stage === 'dead_letter') return null;
    if (status.failedDep) return 'DEPENDENCY_FAILED';
    if (stage === 'blocked' && status.met) return 'DEPS_MET';
    if (stage === 'queued' && !status.met) return 'DEPS_UNMET';
    return null;
  }

  /**
   * Re-evaluates one job against its deps: a dead dep sends it to `dead_letter`
   * (reason `dependency_failed`), met deps unblock it, unmet deps block a queued job.
   * Returns the job as stored afterwards (null if it does not exist).
   */
  async #reevaluate(productId: string, jobId: string): Promise<Stored<JobDoc> | null> {
    const r = await this.#update(productId, jobId, 'supervisor', async (draft) => {
      const stage = draft.stage;
      if (stage === 'shipped' || stage === 'dead_letter') return null;
      const status = await this.#depsStatus(productId, draft.doc.deps, draft.doc.depsMode);
      const event = this.#depsEvent(stage, status);
      if (event === 'DEPENDENCY_FAILED') {
        draft.send({ type: 'DEPENDENCY_FAILED' }, { dependencyId: status.failedDep });
      } else if (event !== null) {
        draft.send({ type: event });
      }
      return null;
    });
    if (!r.ok && !isFleetError(r.error, 'NOT_FOUND')) throw r.error;
    return r.ok ? r.value : null;
  }
}
