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
 */
import { type AnyStateMachine, initialTransition } from 'xstate';
import { JOB_MACHINE_VERSION, type JobMachineEventType, jobMachine } from '../machines/index.js';
import { exceededBudget, ZERO_USAGE } from './budget.js';
import { contentHash, jobIdFor } from './canonical.js';
import { type Clock, iso, ms, systemClock } from './clock.js';
import { type DepsStatus, evaluateDeps, findCycle } from './deps.js';
import type { DocumentStore, PageRequest, Stored } from './document-store.port.js';
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
}

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
    retry: req.retry,
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
  /** Projections maintained live from the events this process writes. */
  readonly projections = new LiveProjections();
  readonly leaseMs: number;
  readonly heartbeatIntervalMs: number;
  readonly #random: () => number;
  readonly #claimSpread: number;
  readonly #machine: AnyStateMachine;
  readonly #log: Logger;
  readonly #mailboxes = new Mailboxes();
  readonly #listeners = new Set<Listener>();
  #lastSeq = 0;

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
    if (!Number.isInteger(this.leaseMs) || this.leaseMs < 1000) {
      throw new RangeError(`leaseMs must be an integer ≥ 1000, got ${this.leaseMs}`);
    }
  }

  /** Calls `listener` with every event this process writes (after it is stored). */
  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Runs `task` in the product's mailbox, then waits until its writes are durable
   * (`store.sync()`: group commit) before the caller hears the answer. The mailbox is
   * free for the next task as soon as this one's writes are applied, so the writes of
   * many callers share one commit.
   */
  async #act<T>(productId: string, task: () => Promise<T>): Promise<T> {
    const result = await this.#mailboxes.run(productId, task);
    await this.store.sync();
    return result;
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
        const checked = await this.#checkDeps(productId, id, content.deps);
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
    const checked = await this.#checkDeps(productId, id, content.deps);
    if (!checked.ok) return checked;
    let outcome: SubmitOutcome = 'superseded';
    // Filled by the plan when the supersede adds edges (see the validation below).
    const validation: {
      readSet: Map<string, Stored<JobDoc>> | null;
      previous: Stored<JobDoc> | null;
    } = { readSet: null, previous: null };
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
      const added = content.deps.filter((d) => !draft.before.deps.includes(d));
      validation.readSet = null;
      if (added.length > 0) {
        // New edges may close a cycle together with a supersede in another process
        // (each check reads the other's deps before either writes: write skew).
        // Optimistic validation: every job the check read is touched (an etag write
        // of the same content), in id order together with our own write, so of two
        // racing supersedes the one that reaches the first shared job second fails
        // its etag, decides again, and sees the cycle. Jobs ordered before ours are
        // touched here; the rest after our write (see below).
        const seen = new Map<string, Stored<JobDoc>>();
        validation.readSet = seen;
        const cycle = await findCycle(id, content.deps, async (jobId) => {
          const job = await this.store.jobs.read(productId, jobId);
          if (job) seen.set(jobId, job);
          return job?.deps ?? null;
        });
        if (cycle) {
          return new FleetError(
            'DEPENDENCY_CYCLE',
            `deps would form a cycle: ${cycle.join(' → ')}`,
            {
              extra: { cycle },
            },
          );
        }
        for (const job of [...seen.values()].filter((j) => j.id < id).sort(byId)) {
          await this.store.jobs.replace(stripEtag(job), job._etag); // 412 → #update re-plans
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
    const { readSet, previous } = validation;
    const touchedAfter = readSet ? [...readSet.values()].filter((j) => j.id > id).sort(byId) : [];
    for (const other of touchedAfter) {
      try {
        await this.store.jobs.replace(stripEtag(other), other._etag);
      } catch (e) {
        if (!isFleetError(e, 'PRECONDITION_FAILED', 'NOT_FOUND')) throw e;
        // It changed since we read it: look again, and undo our edges if they now
        // close a cycle (only a third writer racing both of us gets here).
        const cycle = await findCycle(
          id,
          content.deps,
          async (jobId) => (await this.store.jobs.read(productId, jobId))?.deps ?? null,
        );
        if (cycle && previous) {
          await this.#restoreContent(productId, previous, hash, actor);
          return fail('DEPENDENCY_CYCLE', `deps would form a cycle: ${cycle.join(' → ')}`, {
            cycle,
          });
        }
        break;
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

  /** Deps must exist in the product and must not lead back to `id`. */
  async #checkDeps(productId: string, id: string, deps: readonly string[]): Promise<Result<true>> {
    const missing: string[] = [];
    for (const dep of deps) {
      if (dep !== id && !(await this.store.jobs.read(productId, dep))) missing.push(dep);
    }
    if (missing.length > 0) {
      return fail('UNKNOWN_DEPENDENCY', `no job of this product has id ${missing.join(', ')}`, {
        unknown: missing,
      });
    }
    const cycle = await findCycle(
      id,
      deps,
      async (jobId) => (await this.store.jobs.read(productId, jobId))?.deps ?? null,
    );
    if (cycle)
      return fail('DEPENDENCY_CYCLE', `deps would form a cycle: ${cycle.join(' → ')}`, { cycle });
    return ok(true);
  }

  async #depsStatus(
    productId: string,
    deps: readonly string[],
    mode: 'hard' | 'soft',
  ): Promise<DepsStatus> {
    const docs = new Map<string, Stored<JobDoc> | null>();
    for (const dep of deps) docs.set(dep, await this.store.jobs.read(productId, dep));
    return evaluateDeps(deps, mode, (id) => docs.get(id));
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
          if (factory?.seatLimit != null) {
            // Another process may have claimed for this factory at the same time: the
            // count is not atomic with the claim, so count again and give back the extra.
            const held = await this.store.jobs.countHeld(productId, factoryId);
            if (held > factory.seatLimit) {
              await this.#update(productId, won.job.id, factoryId, (draft) =>
                draft.send(
                  {
                    type: 'RELEASE',
                    factoryId,
                    leaseEpoch: won.lease.leaseEpoch,
                    now: draft.now,
                    depsMet: true,
                  },
                  { reason: 'seat_limit' },
                ),
              );
              return ok(null);
            }
          }
          return ok(won);
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

  /** One claim attempt at the candidate's etag; null if it was lost, `skipped` if unreadable. */
  async #tryClaim(
    candidate: Stored<JobDoc>,
    factoryId: string,
    now: number,
  ): Promise<ClaimGrant | 'skipped' | null> {
    if (candidate.outbox.length > 0) await this.#flush(candidate, false);
    let draft: JobDraft;
    try {
      draft = new JobDraft(candidate, now, factoryId, this.#machine);
    } catch (e) {
      if (!isFleetError(e, 'SNAPSHOT_VERSION')) throw e;
      // One unreadable job must not stop the rest of the queue: skip it, loudly.
      this.#log.error(
        { jobId: candidate.id, err: e },
        'claim skipped a job whose snapshot this build cannot read',
      );
      return 'skipped';
    }
    const exceeded = exceededBudget(
      draft.doc.budget,
      draft.doc.usage,
      draft.context.firstClaimedAt,
      now,
    );
    if (exceeded) {
      // Its wall budget ran out while it waited: it will not be handed out again.
      draft.send({ type: 'BUDGET_EXCEEDED' }, { exceeded });
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
    if (exceeded) return null;
    const run = saved.run;
    return {
      job: saved,
      lease: {
        leaseEpoch: saved.leaseEpoch,
        expiresAt: saved.leaseExpiresAt ?? iso(now + this.leaseMs),
      },
      run: { id: run?.id ?? '', attempt: run?.attempt ?? saved.attempt },
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
        await this.store.sync();
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
    return (await this.#sweepDue(now, { lease: true, retry: false })).reaped;
  }

  /** Moves `failed` jobs whose backoff has passed back to `queued` (or `blocked`). */
  async retryDue(now = this.clock.now()): Promise<number> {
    return (await this.#sweepDue(now, { lease: false, retry: true })).retried;
  }

  /**
   * One supervisor sweep: due timers (expired leases, due retries, wall budgets), outbox
   * repair, and a re-evaluation of blocked jobs (a dependent whose notification was
   * lost is unblocked here). Every write is etag-guarded and idempotent, so sweeps may
   * run in every process at once.
   */
  async sweep(now = this.clock.now()): Promise<SweepReport> {
    const report = await this.#sweepDue(now, { lease: true, retry: true });
    for (;;) {
      const pending = await this.store.jobs.withOutbox({ limit: SWEEP_BATCH });
      let progressed = 0;
      for (const job of pending) {
        await this.#mailboxes.run(job.productId, async () => {
          const cur = await this.store.jobs.read(job.productId, job.id);
          if (cur && cur.outbox.length > 0) {
            await this.#flush(cur, true);
            report.repaired++;
            progressed++;
          }
        });
      }
      if (pending.length < SWEEP_BATCH || progressed === 0) break;
    }
    let cursor: string | null = null;
    do {
      const page: Page<Stored<JobDoc>> = await this.store.jobs.listByStage({
        stage: 'blocked',
        limit: SWEEP_BATCH,
        cursor,
      });
      for (const job of page.items) {
        const after = await this.#mailboxes.run(job.productId, () =>
          this.#reevaluate(job.productId, job.id),
        );
        if (after && after.stage !== 'blocked') report.unblocked++;
      }
      cursor = page.nextCursor;
    } while (cursor !== null);
    await this.store.sync();
    return report;
  }

  async #sweepDue(now: number, kinds: { lease: boolean; retry: boolean }): Promise<SweepReport> {
    const report: SweepReport = {
      reaped: 0,
      retried: 0,
      budgetExceeded: 0,
      repaired: 0,
      unblocked: 0,
    };
    let after: { dueAt: string; productId: string; id: string } | undefined;
    for (;;) {
      const batch = await this.store.jobs.due({
        now: iso(now),
        limit: SWEEP_BATCH,
        ...(after ? { after } : {}),
      });
      for (const job of batch) {
        after = { dueAt: job.dueAt ?? iso(now), productId: job.productId, id: job.id };
        await this.#mailboxes.run(job.productId, () =>
          this.#processDue(job.productId, job.id, now, kinds, report),
        );
      }
      if (batch.length < SWEEP_BATCH) break;
    }
    await this.store.sync();
    return report;
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
        const exceeded = exceededBudget(doc.budget, doc.usage, draft.context.firstClaimedAt, now);
        if (exceeded === 'wall') {
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

  /** The product's jobs, newest first, optionally of one stage. */
  async listJobs(
    productId: string,
    q: { stage?: Stage; limit?: number; cursor?: string | null } = {},
  ): Promise<Result<Page<Stored<JobDoc>>>> {
    return this.#guardRead(() =>
      this.store.jobs.list({
        productId,
        limit: q.limit ?? 50,
        cursor: q.cursor ?? null,
        ...(q.stage ? { stage: q.stage } : {}),
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
    const afterSeq = q.cursor == null ? 0 : Number(q.cursor);
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0)
      return fail('VALIDATION', 'cursor: not a cursor of this list');
    const limit = q.limit ?? 50;
    const items = await this.store.events.list(jobId, { afterSeq, limit });
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
      case 'event': {
        // Report an event once: only the call that stored it (another process, or an
        // earlier flush of this outbox, may have stored it already).
        if (!(await this.store.events.append(effect.event))) return;
        this.projections.apply(effect.event);
        for (const listener of this.#listeners) {
          try {
            listener(effect.event);
          } catch (e) {
            this.#log.warn({ err: e }, 'event listener threw');
          }
        }
        return;
      }
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
        try {
          await this.store.artifacts.create(effect.artifact);
        } catch (e) {
          if (!isFleetError(e, 'ALREADY_EXISTS')) throw e;
        }
        return;
      case 'notifyDependents': {
        const dependents = await this.store.jobs.dependents(job.productId, effect.jobId);
        for (const d of dependents) await this.#reevaluate(d.productId, d.id);
        return;
      }
    }
  }

  /**
   * Writes a derived document unless the store already has the same or a newer `rev`.
   * `likelyNew`: try `create` before reading (one store call instead of two when the
   * document does not exist yet); if it does exist, the read-and-compare path decides.
   */
  async #putNewer<T extends { id: string; rev: number }>(
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
        else if (cur.rev < doc.rev) await container.replace(doc, cur._etag);
        return;
      } catch (e) {
        if (isFleetError(e, 'ALREADY_EXISTS', 'PRECONDITION_FAILED', 'NOT_FOUND')) continue;
        throw e;
      }
    }
    throw new FleetError('STORE_UNAVAILABLE', `could not write ${doc.id}: too many conflicts`);
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
      if (status.failedDep) {
        draft.send({ type: 'DEPENDENCY_FAILED' }, { dependencyId: status.failedDep });
      } else if (stage === 'blocked' && status.met) {
        draft.send({ type: 'DEPS_MET' });
      } else if (stage === 'queued' && !status.met) {
        draft.send({ type: 'DEPS_UNMET' });
      }
      return null;
    });
    return r.ok ? r.value : null;
  }
}
