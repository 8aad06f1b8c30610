/**
 * The invariants the simulator checks after every step (`Checker.check`), at every grant
 * and delivery, and at the end (`Checker.final`). All reads go to the inner store, past
 * the fault injector: a check never trips a fault.
 *
 * 1. Store agreement (test/support/invariants.ts): each job's stage, epoch, events,
 *    runs and lease agree, the pending outbox included; events 1..eventSeq, no gap.
 * 2. The stored stream is a gap-free prefix 1..k of that (k ≤ eventSeq), and a stored
 *    event equals its pending outbox copy.
 * 3. At most one holder per (job, epoch), over every grant ever made: claim answers,
 *    job documents (holder at epoch), run documents (factory at epoch).
 * 4. Epochs only grow: a job's epoch, eventSeq, rev and version never go down, and a
 *    claim hands out an epoch above the one seen before the step; shipped stays shipped.
 * 5. No submitted job disappears (every job seen once is still in the store).
 * 6. Projections: each process's live projections equal `rebuildAll` of the events it
 *    reported; what it reported is what is stored; no event is reported twice (across
 *    processes); every stored event is reported by some process, unless it is still
 *    pending in its job's outbox or the process that stored it crashed before it could
 *    report it; and `rebuildAll` of the stream (stored + pending) gives each product's
 *    stage counts as the job documents are, and each job a timeline of `eventSeq` entries.
 * 7. Soft dependents (issue 10, item 3): after a step that ran alone and fired no fault,
 *    a job whose soft dep left `testing` in that step (by any way but shipping: FAIL,
 *    RELEASE, lease expiry, back to building, requeue) is not `queued` any more, unless
 *    the dep's notification is still pending in its outbox.
 * 8. No process isolated a per-job failure (a sweep, a cascade or a claim that skipped a
 *    job it could not process): in the simulator every such failure is a bug, since
 *    store faults end the loop instead (issue 10, item 1).
 * Per call (in `World.exec`): a rejected call changes nothing; a stale writer is FENCED;
 * an out-of-range value is refused with VALIDATION; a grant's deps are met.
 * At the end (`final`): every outbox is empty and every stream complete.
 */
import { isDeepStrictEqual } from 'node:util';
import type { DocumentStore } from '../../runtime/document-store.port.js';
import { rebuildAll } from '../../runtime/projections.js';
import type {
  ArtifactDoc,
  ClaimGrant,
  EventDoc,
  JobDoc,
  LeaseDoc,
  RunDoc,
  Stage,
} from '../../runtime/types.js';
import { allJobs, jobViolations } from '../support/invariants.js';
import type { World } from './simulator.js';

/** A job as a client could ever observe it: the stored documents with the pending outbox applied. */
export interface LogicalJob {
  doc: Omit<JobDoc, 'outbox'>;
  events: EventDoc[];
  runs: RunDoc[];
  lease: LeaseDoc | null;
  artifacts: ArtifactDoc[];
}

function strip<T extends object>(doc: T & { _etag?: string }): T {
  const { _etag: _ignored, ...rest } = doc;
  return rest as T;
}

const byId = (a: { id: string }, b: { id: string }): number =>
  a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

export async function logicalJob(
  store: DocumentStore,
  productId: string,
  jobId: string,
): Promise<LogicalJob | null> {
  const job = await store.jobs.read(productId, jobId);
  if (!job) return null;
  const { _etag: _e, outbox, ...doc } = job;
  const events = new Map<number, EventDoc>();
  for (const e of await store.events.list(jobId, { limit: 100_000 })) {
    // Clients never see who appended an event (its `writer` stamp).
    const { writer: _w, ...event } = e;
    events.set(e.seq, event);
  }
  const runs = new Map<string, RunDoc>();
  for (const r of (await store.runs.list(jobId, { limit: 1000 })).items) runs.set(r.id, strip(r));
  const stored = await store.leases.read(jobId, jobId);
  let lease: LeaseDoc | null = stored ? strip(stored) : null;
  const artifacts = new Map<string, ArtifactDoc>();
  for (const a of (await store.artifacts.list(jobId, { limit: 1000 })).items)
    artifacts.set(a.id, strip(a));
  for (const e of outbox) {
    if (e.kind === 'event' && !events.has(e.event.seq)) events.set(e.event.seq, e.event);
    if (e.kind === 'run' && (runs.get(e.run.id)?.rev ?? -1) < e.run.rev) runs.set(e.run.id, e.run);
    if (e.kind === 'lease' && (lease?.rev ?? -1) < e.lease.rev) lease = e.lease;
    if (e.kind === 'artifact' && (artifacts.get(e.artifact.id)?.rev ?? -1) < (e.artifact.rev ?? -1))
      artifacts.set(e.artifact.id, e.artifact);
  }
  return {
    doc,
    events: [...events.values()].sort((a, b) => a.seq - b.seq),
    runs: [...runs.values()].sort(byId),
    lease,
    artifacts: [...artifacts.values()].sort(byId),
  };
}

/**
 * Null when `after` is `before` (a rejected call changed nothing), else what changed.
 * `fenced`: the call was FENCED, which may have sent a job past its wall budget to
 * dead_letter (documented: that write is kept): exactly one `budget_exceeded` (wall)
 * event appended and the job dead_letter, nothing else.
 */
export function noopDiff(
  before: LogicalJob | null,
  after: LogicalJob | null,
  fenced: boolean,
): string | null {
  if (isDeepStrictEqual(before, after)) return null;
  if (!before || !after) return before ? 'the job disappeared' : 'a job was created';
  if (
    fenced &&
    after.doc.stage === 'dead_letter' &&
    after.doc.deadReason === 'budget_exceeded' &&
    before.doc.stage !== 'dead_letter' &&
    after.events.length === before.events.length + 1 &&
    isDeepStrictEqual(after.events.slice(0, before.events.length), before.events)
  ) {
    const added = after.events.at(-1);
    if (added?.type === 'budget_exceeded' && added.data.exceeded === 'wall') return null;
  }
  const parts: string[] = [];
  const keys = new Set([...Object.keys(before.doc), ...Object.keys(after.doc)]);
  for (const k of keys) {
    const x = (before.doc as Record<string, unknown>)[k];
    const y = (after.doc as Record<string, unknown>)[k];
    if (!isDeepStrictEqual(x, y)) parts.push(`${k}: ${JSON.stringify(x)} → ${JSON.stringify(y)}`);
  }
  if (!isDeepStrictEqual(before.events, after.events))
    parts.push(
      `events: [${before.events.map((e) => e.type).join(',')}] → [${after.events.map((e) => e.type).join(',')}]`,
    );
  if (!isDeepStrictEqual(before.runs, after.runs)) parts.push('runs changed');
  if (!isDeepStrictEqual(before.lease, after.lease)) parts.push('lease changed');
  if (!isDeepStrictEqual(before.artifacts, after.artifacts)) parts.push('artifacts changed');
  return parts.join('; ').slice(0, 1500);
}

interface Seen {
  epoch: number;
  eventSeq: number;
  rev: number;
  version: number;
  stage: Stage;
}

const MAX_VIOLATIONS = 40;

export class Checker {
  readonly violations: string[] = [];
  readonly #world: World;
  /** `job@epoch` → the one factory that held it. */
  readonly #holders = new Map<string, string>();
  readonly #seen = new Map<string, Seen>();
  /** Event id → the process (`index.gen`) that reported it. */
  readonly #reportedBy = new Map<string, string>();
  /** Events reported since the last check (compared with the store then). */
  #recent: Array<{ proc: string; event: EventDoc }> = [];
  /** Fault id → event id, for unknown-outcome appends. */
  readonly #unknownAppend = new Map<number, string>();
  /** Event id → process index whose append had an unknown outcome. */
  readonly #appendProc = new Map<string, number>();
  /** Stored events nobody will report because the process that stored them crashed. */
  readonly #exempt = new Set<string>();
  /** Set by the world before each check: the step ran alone (not in a `par` group). */
  alone = false;
  /** Set by the world before each check: faults that fired during the step. */
  faultsFired = 0;
  /** Isolated failures already reported, per process (`index.gen`). */
  readonly #isolated = new Map<string, number>();

  constructor(world: World) {
    this.#world = world;
  }

  violation(message: string): void {
    if (this.violations.length < MAX_VIOLATIONS)
      this.violations.push(
        `[${this.#world.step < 0 ? 'liveness' : `step ${this.#world.step}`}] ${message}`,
      );
  }

  // ---- hooks -----------------------------------------------------------------

  delivered(proc: { index: number; gen: number }, event: EventDoc): void {
    const who = `${proc.index}.${proc.gen}`;
    const earlier = this.#reportedBy.get(event.id);
    if (earlier !== undefined)
      this.violation(`event ${event.id} reported twice (process ${earlier}, then ${who})`);
    this.#reportedBy.set(event.id, who);
    this.#appendProc.delete(event.id);
    this.#recent.push({ proc: who, event });
  }

  unknownAppend(eventId: string, faultId: number): void {
    this.#unknownAppend.set(faultId, eventId);
  }

  unknownAppendBy(faultId: number, procIndex: number): void {
    const eventId = this.#unknownAppend.get(faultId);
    if (eventId !== undefined) this.#appendProc.set(eventId, procIndex);
  }

  /** A process ended (crash or restart): what only it could have reported is exempt. */
  processGone(proc: { index: number }): void {
    for (const [eventId, index] of this.#appendProc) {
      if (index === proc.index) {
        this.#exempt.add(eventId);
        this.#appendProc.delete(eventId);
      }
    }
  }

  #holder(jobId: string, epoch: number, factoryId: string, source: string): void {
    const key = `${jobId}@${epoch}`;
    const prev = this.#holders.get(key);
    this.#world.stats.assertions++;
    if (prev === undefined) this.#holders.set(key, factoryId);
    else if (prev !== factoryId)
      this.violation(
        `two holders of ${this.#world.label(jobId)} at epoch ${epoch}: ${prev} and ${factoryId} (${source})`,
      );
  }

  granted(grant: ClaimGrant, factoryId: string): void {
    const { job, lease } = grant;
    this.#world.stats.assertions += 2;
    if (
      job.holderFactoryId !== factoryId ||
      job.leaseEpoch !== lease.leaseEpoch ||
      job.stage !== 'assigned'
    ) {
      this.violation(
        `claim grant to ${factoryId} is inconsistent: job ${job.stage} held by ${job.holderFactoryId}@${job.leaseEpoch}, lease epoch ${lease.leaseEpoch}`,
      );
    }
    const before = this.#seen.get(job.id);
    if (before && lease.leaseEpoch <= before.epoch)
      this.violation(
        `claim of ${this.#world.label(job.id)} handed out epoch ${lease.leaseEpoch}, not above ${before.epoch} seen before`,
      );
    this.#holder(job.id, lease.leaseEpoch, factoryId, 'claim grant');
  }

  // ---- the per-step check ----------------------------------------------------

  async jobs(): Promise<JobDoc[]> {
    return allJobs(this.#world.inner);
  }

  async check(): Promise<void> {
    const w = this.#world;
    const store = w.inner;
    w.stats.invariantChecks++;
    const jobs = (await allJobs(store)) as Array<JobDoc & { _etag: string }>;
    const present = new Set(jobs.map((j) => j.id));
    const storedById = new Map<string, EventDoc>();
    const logical: EventDoc[] = [];
    const stageCounts = new Map<string, Map<Stage, number>>();
    /** Jobs that left `testing` in this step (not for `shipped`), with no notification pending. */
    const leftTesting = new Map<string, JobDoc>();

    for (const job of jobs) {
      w.know(job.productId, job.id);
      for (const v of await jobViolations(store, job)) {
        // A budget an older build wrote (the `corrupt` step) is out of today's schema.
        const oldBudget =
          w.corrupted.has(job.id) &&
          v.includes('document does not match its schema') &&
          !/"path": \[\s*"(?!budget")/.test(v);
        if (!oldBudget) this.violation(v);
      }
      w.stats.assertions += 8;

      // 4. Monotone: epoch, eventSeq, rev, version; shipped is final.
      const prev = this.#seen.get(job.id);
      if (
        prev?.stage === 'testing' &&
        job.stage !== 'testing' &&
        job.stage !== 'shipped' &&
        job.outbox.length === 0
      )
        leftTesting.set(job.id, job);
      if (prev) {
        if (job.leaseEpoch < prev.epoch)
          this.violation(`${w.label(job.id)}: epoch went down ${prev.epoch} → ${job.leaseEpoch}`);
        if (job.eventSeq < prev.eventSeq)
          this.violation(
            `${w.label(job.id)}: eventSeq went down ${prev.eventSeq} → ${job.eventSeq}`,
          );
        if (job.rev < prev.rev) this.violation(`${w.label(job.id)}: rev went down`);
        if (job.version < prev.version) this.violation(`${w.label(job.id)}: version went down`);
        if (prev.stage === 'shipped' && job.stage !== 'shipped')
          this.violation(`${w.label(job.id)}: shipped, then ${job.stage}`);
        w.stats.assertions += 5;
      }
      this.#seen.set(job.id, {
        epoch: job.leaseEpoch,
        eventSeq: job.eventSeq,
        rev: job.rev,
        version: job.version,
        stage: job.stage,
      });

      // 3. Holders.
      if (job.holderFactoryId !== null)
        this.#holder(job.id, job.leaseEpoch, job.holderFactoryId, 'job document');
      const runs = (await store.runs.list(job.id, { limit: 1000 })).items as RunDoc[];
      for (const e of job.outbox) if (e.kind === 'run') runs.push(e.run);
      for (const r of runs) {
        if (r.factoryId !== null)
          this.#holder(job.id, r.leaseEpoch, r.factoryId, `run ${r.attempt}`);
      }

      // 2. The stored stream: a gap-free prefix; pending copies agree.
      const stored = await store.events.list(job.id, { limit: 100_000 });
      const pending = new Map<number, EventDoc>();
      for (const e of job.outbox) if (e.kind === 'event') pending.set(e.event.seq, e.event);
      w.stats.assertions += 2;
      if (stored.some((e, i) => e.seq !== i + 1) || stored.length > job.eventSeq) {
        this.violation(
          `${w.label(job.id)}: stored events are not 1..k (k ≤ ${job.eventSeq}): [${stored.map((e) => e.seq).join(',')}]`,
        );
      }
      for (const e of stored) {
        storedById.set(e.id, e);
        const copy = pending.get(e.seq);
        // The stored copy carries its appender's stamp (`writer`); the rest is the outbox's.
        const { writer: _w, ...content } = e;
        if (copy && !isDeepStrictEqual(copy, content))
          this.violation(`${w.label(job.id)}: stored event ${e.seq} differs from its outbox copy`);
        // 6. Reported by some process, unless still pending, its process crashed, or the
        // live process whose append had an unknown outcome has yet to settle it (its next
        // operation or sweep does; `final` checks that it did).
        if (
          !this.#reportedBy.has(e.id) &&
          !pending.has(e.seq) &&
          !this.#exempt.has(e.id) &&
          !this.#appendProc.has(e.id)
        ) {
          this.violation(
            `${w.label(job.id)}: event ${e.seq} (${e.type}) is stored but no process reported it, and it is no longer pending: live projections and listeners never see it`,
          );
          this.#exempt.add(e.id); // report it once
        }
      }
      const all = new Map<number, EventDoc>();
      for (const e of stored) all.set(e.seq, e);
      for (const [seq, e] of pending) if (!all.has(seq)) all.set(seq, e);
      logical.push(...[...all.values()].sort((a, b) => a.seq - b.seq));
      let counts = stageCounts.get(job.productId);
      if (!counts) {
        counts = new Map();
        stageCounts.set(job.productId, counts);
      }
      counts.set(job.stage, (counts.get(job.stage) ?? 0) + 1);
    }

    // 7. Soft dependents of a dep that left testing are blocked again.
    if (this.alone && this.faultsFired === 0 && leftTesting.size > 0) {
      for (const job of jobs) {
        if (job.stage !== 'queued' || job.depsMode !== 'soft') continue;
        for (const depId of job.deps) {
          const dep = leftTesting.get(depId);
          w.stats.assertions++;
          if (dep)
            this.violation(
              `${w.label(job.id)} is still queued, but its soft dep ${w.label(depId)} left testing in this step (now ${dep.stage}): a soft dependent must be blocked again`,
            );
        }
      }
    }

    // 8. No per-job failure isolated.
    for (const proc of w.procs) {
      const who = `${proc.index}.${proc.gen}`;
      const n = proc.coord.isolatedFailures;
      w.stats.assertions++;
      if (n > (this.#isolated.get(who) ?? 0)) {
        this.#isolated.set(who, n);
        this.violation(
          `process ${who} isolated ${n} per-job failure(s): a job it could not process (see its log)`,
        );
      }
    }

    // 5. No job disappears.
    for (const { jobId } of w.allKnownJobs()) {
      w.stats.assertions++;
      if (!present.has(jobId)) this.violation(`${w.label(jobId)} disappeared from the store`);
    }

    // 6. Projections.
    for (const { proc, event } of this.#recent) {
      w.stats.assertions++;
      const stored = storedById.get(event.id);
      if (!stored || !isDeepStrictEqual(stored, event))
        this.violation(
          `process ${proc} reported event ${event.id} (${event.type}) ${stored ? 'unlike the stored one' : 'which is not stored'}`,
        );
    }
    this.#recent = [];
    for (const proc of w.procs) {
      w.stats.assertions++;
      const live = proc.coord.projections?.snapshot();
      const rebuilt = rebuildAll(proc.delivered);
      if (!isDeepStrictEqual(live, rebuilt)) {
        this.violation(
          `process ${proc.index}.${proc.gen}: live projections differ from rebuildAll of the ${proc.delivered.length} events it reported`,
        );
      }
    }
    const rebuilt = rebuildAll(logical);
    for (const job of jobs) {
      w.stats.assertions++;
      const timeline = rebuilt.timelines[job.id] ?? [];
      if (timeline.length !== job.eventSeq)
        this.violation(
          `${w.label(job.id)}: rebuilt timeline has ${timeline.length} entries, eventSeq is ${job.eventSeq}`,
        );
    }
    for (const [productId, counts] of stageCounts) {
      w.stats.assertions++;
      const projected = Object.entries(rebuilt.stageCounts[productId] ?? {}).filter(
        ([, n]) => n !== 0,
      );
      const actual = [...counts.entries()];
      const norm = (xs: Array<[string, number]>) =>
        JSON.stringify(xs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      if (norm(projected) !== norm(actual))
        this.violation(
          `${productId}: rebuilt stage counts ${norm(projected)} but the jobs are ${norm(actual)}`,
        );
    }
  }

  /** After the liveness phase: every outbox carried out, every stream complete. */
  async final(): Promise<void> {
    const w = this.#world;
    // Every unknown-outcome append of a live process was settled: reported if it landed.
    for (const [eventId] of this.#appendProc) {
      const jobId = eventId.slice(0, eventId.lastIndexOf('.'));
      const stored = await w.inner.events.read(jobId, eventId);
      w.stats.assertions++;
      if (stored !== null && !this.#reportedBy.has(eventId))
        this.violation(`event ${eventId} landed after an unknown outcome and was never reported`);
    }
    const pending = await w.inner.jobs.withOutbox({ limit: 100 });
    w.stats.assertions++;
    for (const job of pending)
      this.violation(`${w.label(job.id)}: outbox still pending with faults off`);
    for (const { productId, jobId } of w.allKnownJobs()) {
      const proc = w.procs[0];
      if (!proc) break;
      const r = await proc.coord.listEvents(productId, jobId, { limit: 100_000 });
      const job = await w.inner.jobs.read(productId, jobId);
      w.stats.assertions++;
      if (!r.ok || !job) {
        this.violation(`${w.label(jobId)}: unreadable at the end`);
        continue;
      }
      const seqs = r.value.items.map((e) => e.seq);
      if (seqs.length !== job.eventSeq || seqs.some((s, i) => s !== i + 1))
        this.violation(
          `${w.label(jobId)}: final stream [${seqs.join(',')}] is not 1..${job.eventSeq}`,
        );
    }
  }
}
