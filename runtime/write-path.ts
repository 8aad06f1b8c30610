/**
 * The write path: read → decide with the machine → etag write → follow-ups, and the
 * product mailboxes that run it.
 *
 * The one rule (DESIGN.md): every decision that must be atomic lives in one job
 * document and is written with an etag condition. A change is: read the job and its
 * etag; compute the next document with the machine's pure `transition()` (a
 * `JobDraft`); if the machine rejected the event, answer FENCED / INVALID_TRANSITION
 * and write nothing; write with `If-Match`; on a conflict re-read and decide again (a
 * worker whose epoch is now stale then gets FENCED). Only after the write succeeded are
 * the derived documents written: the job write carries them in its outbox (events
 * numbered gap-free, run and lease versions, artifact pointers, "re-evaluate my
 * dependents"), and `flush` writes them idempotently, then clears the outbox. A crash
 * between the two is repaired by the next write of the job (which flushes first), by a
 * read of its events, or by the sweep.
 *
 * In one process, every mutation of a product goes through that product's mailbox, so
 * claims of one product do not race each other; across processes, etags decide.
 */
import type { Core } from './core.js';
import { MAX_CONFLICTS, stripEtag } from './core.js';
import type { Stored } from './document-store.port.js';
import { FleetError, fail, isFleetError, ok, type Result } from './errors.js';
import { JobDraft, type Snapshot } from './job-draft.js';
import type { ArtifactDoc, EventDoc, JobDoc, LeaseDoc, OutboxEffect, RunDoc } from './types.js';

/** What a plan decides about a draft: an error to abort (nothing written), or null. */
export type Plan = (draft: JobDraft) => FleetError | null | Promise<FleetError | null>;

/** Options of one update: a caller's `If-Match`, and the time the decision is made at. */
export interface UpdateOptions {
  ifMatch?: string;
  now?: number;
}

/** Jobs kept parsed by the hot-job cache, at most. */
const HOT_JOBS = 20_000;

/** Freezes a value and everything in it (the hot-job cache shares what it keeps). */
function deepFreeze<T>(value: T): T {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object' || Object.isFrozen(v)) continue;
    Object.freeze(v);
    for (const child of Object.values(v)) stack.push(child);
  }
  return value;
}

/**
 * The jobs this process wrote last, as written (parsed, frozen) with their restored
 * machine snapshots: a write of one of them needs no read, no JSON parse and no
 * snapshot restore, as long as the store says its etag is still the one we wrote
 * (`jobs.etag`, answered from memory or an index). Only used with stores that have
 * `jobs.etag`; a stale entry is dropped at its first use.
 */
class HotJobs {
  readonly #map = new Map<string, { doc: Stored<JobDoc>; snapshot: Snapshot }>();

  get(productId: string, id: string): { doc: Stored<JobDoc>; snapshot: Snapshot } | undefined {
    return this.#map.get(`${productId}\u0000${id}`);
  }

  set(doc: Stored<JobDoc>, snapshot: Snapshot): void {
    const key = `${doc.productId}\u0000${doc.id}`;
    this.#map.delete(key);
    this.#map.set(key, { doc: deepFreeze(doc), snapshot });
    if (this.#map.size > HOT_JOBS) {
      const oldest = this.#map.keys().next().value;
      if (oldest !== undefined) this.#map.delete(oldest);
    }
  }

  delete(productId: string, id: string): void {
    this.#map.delete(`${productId}\u0000${id}`);
  }
}

/** True when the job's open run was opened by the job's latest write (a claim). */
const opened = (job: JobDoc): boolean =>
  job.run !== null && job.run.startedAt === job.updatedAt && job.run.attempt === job.attempt;

export class WritePath {
  readonly #core: Core;
  readonly #hot = new HotJobs();

  constructor(core: Core) {
    this.#core = core;
  }

  /**
   * Runs `task` in the product's mailbox, then waits until its writes are durable
   * (`store.sync(mark)`: group commit) before the caller hears the answer, and reports
   * the events it stored. The mailbox is free for the next task as soon as this one's
   * writes are applied, so the writes of many callers share one commit.
   */
  async act<T>(productId: string, task: () => Promise<T>): Promise<T> {
    const { store, mailboxes, reporter } = this.#core;
    const from = store.mark();
    let result: T;
    try {
      result = await mailboxes.run(productId, task);
    } catch (e) {
      await reporter.settle(from).catch(() => {});
      throw e;
    }
    await reporter.settle(from);
    return result;
  }

  /**
   * Read → decide (`plan` on a fresh draft) → etag write → follow-up, retried on
   * conflict. `plan` returns an error to abort (nothing is written) or null; a draft
   * that accepted nothing is not written. Must run inside the product's mailbox.
   */
  async update(
    productId: string,
    jobId: string,
    actor: string | null,
    plan: Plan,
    options: UpdateOptions = {},
  ): Promise<Result<Stored<JobDoc>>> {
    const { clock, machine, versions } = this.#core;
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      const { doc: cur, snapshot: restored } = await this.#current(productId, jobId, attempt);
      if (!cur) return fail('NOT_FOUND', `no job ${jobId}`);
      if (options.ifMatch !== undefined && cur._etag !== options.ifMatch) {
        return fail(
          'PRECONDITION_FAILED',
          `job ${jobId} has changed since ETag ${options.ifMatch}`,
        );
      }
      if (cur.outbox.length > 0) await this.flush(cur, false);
      let draft: JobDraft;
      try {
        // A hot entry is always of the current version (this process wrote it); a job
        // read from the store is migrated here if an older build wrote it.
        draft = new JobDraft(cur, options.now ?? clock.now(), actor, machine, restored, versions);
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
      try {
        return ok(await this.write(draft, cur._etag));
      } catch (e) {
        if (isFleetError(e, 'PRECONDITION_FAILED')) continue;
        if (isFleetError(e, 'NOT_FOUND')) return fail('NOT_FOUND', `no job ${jobId}`);
        throw e;
      }
    }
    return fail('STORE_UNAVAILABLE', `job ${jobId} kept changing under us; try again`);
  }

  /**
   * The job as stored: from the hot-job cache when the store confirms its etag (only on
   * a first attempt: after a conflict, always read afresh), else read.
   */
  async #current(
    productId: string,
    jobId: string,
    attempt: number,
  ): Promise<{ doc: Stored<JobDoc> | null; snapshot?: Snapshot }> {
    const { store } = this.#core;
    if (store.jobs.etag !== undefined) {
      const hot = attempt === 0 ? this.#hot.get(productId, jobId) : undefined;
      if (hot !== undefined && (await store.jobs.etag(productId, jobId)) === hot.doc._etag) {
        return hot;
      }
      this.#hot.delete(productId, jobId);
    }
    return { doc: await store.jobs.read(productId, jobId) };
  }

  /**
   * Creates a new job (a draft made by `JobDraft.forNew`) and carries out its outbox.
   * `ALREADY_EXISTS` when its id is taken (a concurrent submission won).
   */
  create(draft: JobDraft): Promise<Stored<JobDoc>> {
    return this.write(draft, null);
  }

  /**
   * Creates several new jobs (drafts made by `JobDraft.forNew`) as one unit: all of them
   * or none. A store with `commitMany` (SQLite, memory) writes every job and its events in
   * one atomic step of one durable commit; only a "notify my dependents" stays in an
   * outbox, carried out right after. Other stores (Cosmos DB) get one create per job with
   * its outbox; if one fails, the jobs created before it are deleted again (their
   * outboxes not yet carried out, so none of their events exists or was reported) and the
   * failure is thrown; then each outbox is carried out. `ALREADY_EXISTS` when an id is
   * taken (a concurrent submission won). Returns the stored jobs in order.
   */
  async createMany(drafts: readonly JobDraft[]): Promise<Stored<JobDoc>[]> {
    const { store, reporter } = this.#core;
    const docs = drafts.map((d) => d.finalize());
    if (store.commitMany === undefined) {
      const created: Stored<JobDoc>[] = [];
      try {
        for (const doc of docs) created.push(await store.jobs.create(doc));
      } catch (e) {
        for (const job of created) {
          await store.jobs.delete(job.productId, job.id, job._etag).catch(() => {});
        }
        throw e;
      }
      const out: Stored<JobDoc>[] = [];
      for (const job of created) out.push(await this.flush(job, true));
      return out;
    }
    const events: EventDoc[] = [];
    const commits = docs.map((doc) => {
      const own: EventDoc[] = [];
      const runs: RunDoc[] = [];
      const artifacts: ArtifactDoc[] = [];
      let lease: LeaseDoc | null = null;
      const outbox: OutboxEffect[] = [];
      for (const effect of doc.outbox) {
        if (effect.kind === 'event') own.push(reporter.stamp(effect.event));
        else if (effect.kind === 'run') runs.push(effect.run);
        else if (effect.kind === 'lease') lease = effect.lease;
        else if (effect.kind === 'artifact') {
          artifacts.push({ ...effect.artifact, rev: effect.artifact.rev ?? doc.rev });
        } else outbox.push(effect);
      }
      events.push(...own);
      return { job: { ...doc, outbox }, etag: null, events: own, runs, lease, artifacts };
    });
    const mark = store.mark();
    const saved = await store.commitMany(commits);
    for (const e of events) reporter.stored(e, mark);
    // Not kept in the hot-job cache: a batch of new jobs waits in the queue, and would
    // push the jobs being worked on out of the cache (a claim reads them once anyway).
    const out: Stored<JobDoc>[] = [];
    for (const job of saved) out.push(job.outbox.length > 0 ? await this.flush(job, true) : job);
    return out;
  }

  /**
   * Writes a decided draft over the stored job of etag `etag` (null: creates it), with
   * its derived documents (events, runs, lease, artifacts), and carries out what must
   * follow. `PRECONDITION_FAILED` / `NOT_FOUND` / `ALREADY_EXISTS` when the stored job
   * is not the one the draft was decided on.
   *
   * A store that commits a job with its derived documents atomically (`store.commit`:
   * SQLite, memory) gets them in the same step: no outbox, and no second write of the
   * job to clear one. The only follow-up that stays in the outbox there is "notify my
   * dependents", and only while the job has dependents (the cascade runs right after,
   * then clears it), so a crash cannot lose it. Other stores (Cosmos DB) get the outbox
   * write and its follow-ups (`flush`).
   */
  async write(draft: JobDraft, etag: string | null): Promise<Stored<JobDoc>> {
    const { store, reporter } = this.#core;
    const doc = draft.finalize();
    if (store.commit === undefined) {
      const saved =
        etag === null ? await store.jobs.create(doc) : await store.jobs.replace(doc, etag);
      return this.flush(saved, true);
    }
    const events: EventDoc[] = [];
    const runs: RunDoc[] = [];
    const artifacts: ArtifactDoc[] = [];
    let lease: LeaseDoc | null = null;
    let notify: OutboxEffect | null = null;
    for (const effect of doc.outbox) {
      switch (effect.kind) {
        case 'event':
          events.push(reporter.stamp(effect.event));
          break;
        case 'run':
          runs.push(effect.run);
          break;
        case 'lease':
          lease = effect.lease;
          break;
        case 'artifact':
          artifacts.push({ ...effect.artifact, rev: effect.artifact.rev ?? doc.rev });
          break;
        case 'notifyDependents':
          notify = effect;
          break;
      }
    }
    const keep = notify !== null && (await store.jobs.dependents(doc.productId, doc.id)).length > 0;
    const mark = store.mark();
    const saved = await store.commit({
      job: keep && notify !== null ? { ...doc, outbox: [notify] } : { ...doc, outbox: [] },
      etag,
      events,
      runs,
      lease,
      artifacts,
    });
    for (const e of events) reporter.stored(e, mark);
    const final = keep ? await this.flush(saved, true) : saved;
    if (store.jobs.etag !== undefined) this.#hot.set(final, draft.snapshot);
    return final;
  }

  /**
   * Carries out a job's outbox (idempotently: events by deterministic id, run and lease
   * versions newest-wins, artifacts by id, dependents re-evaluated), then, if `clear`,
   * empties the outbox with an etag write. Losing that write is fine: whoever wrote the
   * job flushed this outbox before writing (see `update`).
   */
  async flush(job: Stored<JobDoc>, clear: boolean): Promise<Stored<JobDoc>> {
    for (const effect of job.outbox) await this.#carryOut(effect, job);
    if (!clear || job.outbox.length === 0) return job;
    try {
      return await this.#core.store.jobs.replace({ ...stripEtag(job), outbox: [] }, job._etag);
    } catch (e) {
      if (isFleetError(e, 'PRECONDITION_FAILED', 'NOT_FOUND')) return job;
      throw e;
    }
  }

  async #carryOut(effect: OutboxEffect, job: Stored<JobDoc>): Promise<void> {
    const { store, reporter, deps } = this.#core;
    switch (effect.kind) {
      case 'event':
        // Reported once durable, by this process only if this process stored it.
        return reporter.append(effect.event);
      case 'run':
        return this.#putNewer(store.runs, effect.run, effect.run.jobId, opened(job));
      case 'lease':
        // The lease document of a job's first claim is (almost always) new too.
        return this.#putNewer(
          store.leases,
          effect.lease,
          effect.lease.jobId,
          opened(job) && job.attempt === 1,
        );
      case 'artifact':
        // Newest wins (by the job write that recorded it), like the events say.
        return this.#putNewer(
          store.artifacts,
          { ...effect.artifact, rev: effect.artifact.rev ?? job.rev },
          effect.artifact.jobId,
          true,
        );
      case 'notifyDependents':
        return deps.cascade(job.productId, effect.jobId);
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
}
