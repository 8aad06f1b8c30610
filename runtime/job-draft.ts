/**
 * A job draft: the next version of one job document, computed purely from the current
 * document and a sequence of machine events.
 *
 * The draft restores the persisted snapshot, applies each event with xstate's pure
 * `transition()`, mirrors the machine context onto the document fields the stores
 * index (stage, epoch, holder, expiry, `dueAt`), numbers the stream events it implies,
 * and turns the machine's named actions (`openRun`, `closeRun`, `notifyDependents`)
 * into outbox effects. Nothing is written here: the coordinator writes `finalize()`'s
 * document with the etag of `before`, and carries out the outbox only after that.
 */
import type { AnyStateMachine } from 'xstate';
import {
  JOB_SNAPSHOT_MIGRATIONS,
  type JobContext,
  type JobMachineEvent,
  type JobMachineEventType,
  jobMachine,
  migrateSnapshot,
  type PersistedSnapshot,
  type SnapshotMigrations,
  WORKER_EVENT_TYPES,
} from '../machines/index.js';
import { addUsage, wallDeadline, ZERO_USAGE } from './budget.js';
import { iso, ms } from './clock.js';
import type { Stored } from './document-store.port.js';
import { FleetError } from './errors.js';
import { eventId, type JobEventData, type JobEventType, runId } from './events.js';
import { stepper } from './machine-step.js';
import type {
  ErrorInfo,
  EventDoc,
  JobDoc,
  LeaseDoc,
  OutboxEffect,
  RunDoc,
  RunExit,
  Stage,
  Usage,
} from './types.js';

/** A machine snapshot as `transition()` takes and returns it. */
export type Snapshot = ReturnType<typeof jobMachine.resolveState>;

/**
 * Restores a persisted snapshot. A snapshot written by an older machine version is
 * brought to the current one by the registry's migrations first (on a copy: `doc` is
 * never changed; the job's next write stores the result). A version with no path to the
 * current one (a newer build's, or a missing step) is refused with `SNAPSHOT_VERSION`,
 * as is a malformed snapshot.
 */
export function restoreSnapshot(
  doc: Pick<JobDoc, 'id' | 'machineVersion' | 'snapshot'>,
  machine: AnyStateMachine = jobMachine,
  versions: SnapshotMigrations = JOB_SNAPSHOT_MIGRATIONS,
): Snapshot {
  const persisted = doc.snapshot as { value?: unknown; context?: unknown };
  const wellFormed = (s: { value?: unknown; context?: unknown }): boolean =>
    typeof s.value === 'string' && typeof s.context === 'object' && s.context !== null;
  if (!wellFormed(persisted)) {
    throw new FleetError('SNAPSHOT_VERSION', `job ${doc.id} has a malformed snapshot`);
  }
  const migrated = migrateSnapshot(versions, doc.machineVersion, persisted as PersistedSnapshot);
  if (migrated === null) {
    throw new FleetError(
      'SNAPSHOT_VERSION',
      `job ${doc.id} was persisted by job machine version ${doc.machineVersion}; this build knows version ${versions.version} and has no migration from it`,
    );
  }
  if (!wellFormed(migrated)) {
    throw new FleetError(
      'SNAPSHOT_VERSION',
      `job ${doc.id}: the migration from machine version ${doc.machineVersion} made a malformed snapshot`,
    );
  }
  return machine.resolveState(migrated as unknown as Parameters<typeof jobMachine.resolveState>[0]);
}

/** The JSON-safe persisted form of a snapshot. */
export function persistSnapshot(
  snapshot: Snapshot,
  machine: AnyStateMachine = jobMachine,
): Record<string, unknown> {
  return machine.getPersistedSnapshot(snapshot) as Record<string, unknown>;
}

const WORKER = new Set<JobMachineEventType>(WORKER_EVENT_TYPES);

/** True when a worker event is not from the current holder at the current epoch. */
export function isFenced(context: JobContext, event: JobMachineEvent): boolean {
  if (!WORKER.has(event.type) || !('leaseEpoch' in event)) return false;
  return (
    event.leaseEpoch !== context.leaseEpoch ||
    context.holder === null ||
    event.factoryId !== context.holder
  );
}

/** Stream event recorded when the machine accepts each event (none for RENEW/RECORD). */
const STREAM_TYPE: Readonly<Record<JobMachineEventType, JobEventType | null>> = {
  DEPS_MET: 'unblocked',
  DEPS_UNMET: 'blocked',
  CLAIM: 'claimed',
  BUILD: 'stage_changed',
  REVIEW: 'stage_changed',
  TEST: 'stage_changed',
  SHIP: 'stage_changed',
  FAIL: 'failed',
  RENEW: null,
  RELEASE: 'released',
  RECORD: null,
  GIVE_BACK: 'released',
  LEASE_EXPIRED: 'lease_expired',
  RETRY_DUE: 'retry_due',
  SUPERSEDE: 'superseded',
  REQUEUE: 'requeued',
  CANCEL: 'cancelled',
  DEPENDENCY_FAILED: 'dependency_failed',
  BUDGET_EXCEEDED: 'budget_exceeded',
};

/** Outcome details of the attempt being closed, from the worker's PATCH. */
export interface RunOutcome {
  result?: Record<string, unknown>;
  verifyResult?: Record<string, unknown>;
  error?: ErrorInfo;
}

export class JobDraft {
  readonly before: Stored<JobDoc>;
  readonly now: number;
  readonly actor: string | null;
  /** The working document (no etag). */
  readonly doc: JobDoc;
  readonly effects: OutboxEffect[] = [];
  readonly #machine: AnyStateMachine;
  /** The machine's version (stamped on the written document) and its migrations. */
  readonly #versions: SnapshotMigrations;
  /**
   * `before`'s snapshot as restored: while it is still current (and `before` was of the
   * current machine version, so nothing was migrated), `before.snapshot` is its persisted form.
   */
  readonly #restored: Snapshot;
  #snapshot: Snapshot;
  #outcome: RunOutcome = {};
  #leaseEndedBy: 'expired' | 'released' = 'released';
  #changed = false;
  /** Renewals of the lease as read (the lease mirror is rewritten when they change). */
  readonly #renewalsBefore: number;

  /**
   * @param restored - `before`'s snapshot already restored (a cache of the write path
   *   that keeps the snapshot of the version it wrote); restored here when absent
   *   (migrated from an older machine version if need be).
   * @param versions - `machine`'s version and snapshot migrations.
   */
  constructor(
    before: Stored<JobDoc>,
    now: number,
    actor: string | null,
    machine: AnyStateMachine = jobMachine,
    restored?: Snapshot,
    versions: SnapshotMigrations = JOB_SNAPSHOT_MIGRATIONS,
  ) {
    this.before = before;
    this.now = now;
    this.actor = actor;
    this.#machine = machine;
    this.#versions = versions;
    const { _etag: _ignored, ...doc } = before;
    this.doc = { ...doc, outbox: [], rev: before.rev + 1 };
    this.#snapshot = restored ?? restoreSnapshot(before, machine, versions);
    this.#restored = this.#snapshot;
    this.#renewalsBefore = this.#snapshot.context.renewals;
  }

  /** The machine snapshot after the events sent so far (immutable). */
  get snapshot(): Snapshot {
    return this.#snapshot;
  }

  /**
   * A brand-new job: `doc` must carry the initial snapshot (persisted), made by `machine`
   * (so of `versions.version`, whatever `doc.machineVersion` says; the write stamps it);
   * `restored`, when given, is that snapshot already restored.
   */
  static forNew(
    doc: JobDoc,
    now: number,
    actor: string | null,
    machine?: AnyStateMachine,
    restored?: Snapshot,
    versions: SnapshotMigrations = JOB_SNAPSHOT_MIGRATIONS,
  ): JobDraft {
    const draft = new JobDraft(
      { ...doc, machineVersion: versions.version, rev: -1, _etag: '' },
      now,
      actor,
      machine,
      restored,
      versions,
    );
    draft.#changed = true;
    return draft;
  }

  get context(): JobContext {
    return this.#snapshot.context;
  }

  get stage(): Stage {
    return this.#snapshot.value as Stage;
  }

  /** True once anything was accepted (a write is needed). */
  get changed(): boolean {
    return this.#changed;
  }

  /** Details for the run that a `closeRun` in the next events will close. */
  setOutcome(outcome: RunOutcome): void {
    this.#outcome = outcome;
  }

  /**
   * Applies one machine event. Returns null when accepted, or the reason it was
   * rejected: `FENCED` for a worker event from a stale epoch or a non-holder (checked
   * first), `INVALID_TRANSITION` otherwise. A rejected event changes nothing.
   */
  send(event: JobMachineEvent, data: Record<string, unknown> = {}): FleetError | null {
    const prev = this.#snapshot;
    const [next, actions] = stepper(this.#machine)(prev, event);
    if (next === prev) {
      if (isFenced(prev.context, event)) {
        return new FleetError(
          'FENCED',
          `job ${this.doc.id} is at lease epoch ${prev.context.leaseEpoch} held by ${prev.context.holder ?? 'nobody'}; the call carried epoch ${'leaseEpoch' in event ? event.leaseEpoch : '?'} from ${'factoryId' in event ? event.factoryId : '?'}`,
          { extra: { leaseEpoch: prev.context.leaseEpoch } },
        );
      }
      return new FleetError(
        'INVALID_TRANSITION',
        `${event.type} is not allowed while job ${this.doc.id} is ${String(prev.value)}`,
        { extra: { stage: String(prev.value) } },
      );
    }
    this.#changed = true;
    const from = prev.value as Stage;
    const prevHolder = prev.context.holder;
    this.#snapshot = next as Snapshot;
    this.#syncFromContext();
    if (event.type === 'LEASE_EXPIRED') this.#leaseEndedBy = 'expired';
    else if (this.doc.holderFactoryId === null) this.#leaseEndedBy = 'released';

    for (const action of actions) {
      const name: string = action.type;
      if (name === 'openRun') this.#openRun();
      else if (name === 'closeRun') {
        this.#closeRun((action as unknown as { params: { exit: RunExit } }).params.exit);
      } else if (name === 'notifyDependents') {
        this.effects.push({ kind: 'notifyDependents', jobId: this.doc.id });
      }
    }

    const type = STREAM_TYPE[event.type];
    if (type !== null) {
      const ctx = this.context;
      const extra: Record<string, unknown> = {};
      if (type === 'claimed' && event.type === 'CLAIM') {
        extra.factoryId = event.factoryId;
        extra.attempt = ctx.attempt;
        extra.runId = runId(this.doc.id, ctx.attempt);
        extra.expiresAt = iso(event.expiresAt);
      } else if ('factoryId' in event) {
        extra.factoryId = event.factoryId;
      }
      if (type === 'lease_expired') extra.factoryId = prevHolder;
      if (type === 'failed') {
        extra.errorClass = this.#outcome.error?.class ?? null;
        extra.notBefore = this.doc.notBefore;
      }
      if (type === 'failed' || type === 'lease_expired') extra.deadReason = this.doc.deadReason;
      if (type === 'cancelled' || type === 'dependency_failed' || type === 'budget_exceeded') {
        extra.deadReason = this.doc.deadReason;
      }
      if (type === 'superseded') extra.version = this.doc.version;
      this.record(type, { from, ...extra, ...data } as Partial<JobEventData[typeof type]>);
    }
    return null;
  }

  /** Appends a stream event (numbered now; written by the outbox follow-up). */
  record<K extends JobEventType>(type: K, data: Partial<JobEventData[K]>): void {
    this.#changed = true;
    const seq = this.doc.eventSeq + 1;
    this.doc.eventSeq = seq;
    const event: EventDoc = {
      id: eventId(this.doc.id, seq),
      productId: this.doc.productId,
      jobId: this.doc.id,
      seq,
      type,
      at: iso(this.now),
      actor: this.actor,
      data: {
        from: this.stage,
        to: this.stage,
        ...data,
        leaseEpoch: this.doc.leaseEpoch,
      },
    };
    // `from` given by send() wins; `to` is always the stage after the event.
    event.data.to = this.stage;
    this.effects.push({ kind: 'event', event });
  }

  /** Adds usage increments to the job totals and to the open run (if any). */
  addInsights(insights: Partial<Usage>, model?: string): void {
    this.#changed = true;
    this.doc.usage = addUsage(this.doc.usage, insights);
    if (this.doc.run) {
      this.doc.run = {
        ...this.doc.run,
        insights: addUsage(this.doc.run.insights, insights),
        ...(model !== undefined ? { model } : {}),
      };
      this.effects.push({ kind: 'run', run: this.#runDoc(null) });
    }
  }

  /** Marks a content/doc-only change (checkpoint, supersede fields) as needing a write. */
  touch(): void {
    this.#changed = true;
  }

  /** The document to write: context mirrored, `dueAt` computed, outbox attached. */
  finalize(): JobDoc {
    const doc = this.doc;
    doc.updatedAt = iso(this.now);
    // A draft the machine did not move keeps the persisted snapshot it was made from,
    // unless that was of an older machine version: a migrated snapshot is written anew.
    doc.snapshot =
      this.#snapshot === this.#restored && this.before.machineVersion === this.#versions.version
        ? this.before.snapshot
        : persistSnapshot(this.#snapshot, this.#machine);
    doc.machineVersion = this.#versions.version;
    doc.dueAt = this.#dueAt();
    const b = this.before;
    if (
      b.rev >= 0 &&
      (b.holderFactoryId !== doc.holderFactoryId ||
        b.leaseExpiresAt !== doc.leaseExpiresAt ||
        b.leaseEpoch !== doc.leaseEpoch ||
        this.#renewalsBefore !== this.context.renewals)
    ) {
      this.effects.push({ kind: 'lease', lease: this.#leaseDoc() });
    }
    // One version per derived document: the last one computed in this write.
    const seen = new Set<string>();
    const effects: OutboxEffect[] = [];
    for (let i = this.effects.length - 1; i >= 0; i--) {
      const e = this.effects[i] as OutboxEffect;
      const key =
        e.kind === 'run'
          ? `run:${e.run.id}`
          : e.kind === 'lease'
            ? 'lease'
            : e.kind === 'notifyDependents'
              ? 'notify'
              : e.kind === 'artifact'
                ? `artifact:${e.artifact.id}`
                : null;
      if (key !== null) {
        if (seen.has(key)) continue;
        seen.add(key);
      }
      effects.push(e);
    }
    effects.reverse();
    // Dependents are re-evaluated after this job's own documents are written.
    doc.outbox = [
      ...effects.filter((e) => e.kind !== 'notifyDependents'),
      ...effects.filter((e) => e.kind === 'notifyDependents'),
    ];
    return doc;
  }

  #syncFromContext(): void {
    const c = this.context;
    const d = this.doc;
    d.stage = this.stage;
    d.leaseEpoch = c.leaseEpoch;
    d.holderFactoryId = c.holder;
    d.leaseExpiresAt = c.leaseExpiresAt === null ? null : iso(c.leaseExpiresAt);
    d.attempt = c.attempt;
    d.failures = c.failures;
    d.notBefore = c.notBefore === null ? null : iso(c.notBefore);
    d.deadReason = c.deadReason;
    d.firstClaimedAt = c.firstClaimedAt === null ? null : iso(c.firstClaimedAt);
  }

  #openRun(): void {
    const c = this.context;
    this.doc.run = {
      id: runId(this.doc.id, c.attempt),
      attempt: c.attempt,
      factoryId: c.holder ?? '',
      leaseEpoch: c.leaseEpoch,
      startedAt: iso(this.now),
      insights: { ...ZERO_USAGE },
    };
    this.effects.push({ kind: 'run', run: this.#runDoc(null) });
  }

  #closeRun(exit: RunExit): void {
    if (!this.doc.run) return;
    this.effects.push({ kind: 'run', run: this.#runDoc(exit) });
    if (exit === 'failed' && this.#outcome.error) this.doc.lastError = this.#outcome.error;
    this.doc.run = null;
  }

  #runDoc(exit: RunExit | null): RunDoc {
    const run = this.doc.run;
    if (!run) throw new Error('no open run');
    return {
      id: run.id,
      productId: this.doc.productId,
      jobId: this.doc.id,
      attempt: run.attempt,
      factoryId: run.factoryId,
      leaseEpoch: run.leaseEpoch,
      engine: this.doc.engineClass,
      profileSnapshot: null,
      startedAt: run.startedAt,
      endedAt: exit === null ? null : iso(this.now),
      exit,
      verifyResult: exit === null ? null : (this.#outcome.verifyResult ?? null),
      result: exit === null ? null : (this.#outcome.result ?? null),
      error: exit === 'failed' ? (this.#outcome.error ?? null) : null,
      insights: run.insights,
      model: run.model ?? null,
      rev: this.doc.rev,
    };
  }

  #leaseDoc(): LeaseDoc {
    const d = this.doc;
    const held = d.holderFactoryId !== null;
    return {
      id: d.id,
      productId: d.productId,
      jobId: d.id,
      holderFactoryId: d.holderFactoryId,
      leaseEpoch: d.leaseEpoch,
      expiresAt: d.leaseExpiresAt,
      renewals: this.context.renewals,
      status: held ? 'held' : this.#leaseEndedBy,
      rev: d.rev,
    };
  }

  #dueAt(): string | null {
    const d = this.doc;
    const wall = wallDeadline(d.budget, d.firstClaimedAt === null ? null : ms(d.firstClaimedAt));
    const candidates: number[] = [];
    if (wall !== null && d.stage !== 'shipped' && d.stage !== 'dead_letter') candidates.push(wall);
    if (d.leaseExpiresAt !== null) candidates.push(ms(d.leaseExpiresAt));
    if (d.stage === 'failed' && d.notBefore !== null) candidates.push(ms(d.notBefore));
    return candidates.length === 0 ? null : iso(Math.min(...candidates));
  }
}
