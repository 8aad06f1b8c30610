/**
 * Submission: idempotent on `(product, idempotencyKey)` with canonical content
 * comparison; a new key creates the job, the same content returns it, different
 * content supersedes it while it is `queued` or `blocked` and conflicts after that.
 * Deps and a parent are checked (they must exist; deps may not close a cycle).
 */
import { type AnyStateMachine, initialTransition } from 'xstate';
import { JOB_MACHINE_VERSION } from '../machines/index.js';
import { ZERO_USAGE } from './budget.js';
import { contentHash, jobIdFor } from './canonical.js';
import { iso } from './clock.js';
import { byId, type Core, MAX_CONFLICTS, parse, stripEtag } from './core.js';
import { findCycle } from './deps.js';
import type { JobLink, Stored } from './document-store.port.js';
import { FleetError, fail, isFleetError, ok, type Result } from './errors.js';
import { JobDraft, persistSnapshot, restoreSnapshot, type Snapshot } from './job-draft.js';
import * as S from './schemas.js';
import type { JobDoc, SubmitInput, SubmitOutcome, SubmitRequest } from './types.js';

/** Submitted content, normalised: the part of a submission idempotency compares. */
export function contentOf(req: SubmitRequest) {
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

/**
 * Idempotent submission on `(productId, idempotencyKey)`: a new key creates the job
 * (`created`); the same content returns it (`existing`); different content replaces
 * it while it is `queued` or `blocked` (`superseded`, version + 1) and is an
 * `IDEMPOTENCY_CONFLICT` after that. Deps must name jobs of the product
 * (`UNKNOWN_DEPENDENCY`) and may not close a cycle (`DEPENDENCY_CYCLE`). A job with
 * unmet deps starts `blocked`; with a dep in `dead_letter`, it goes there too.
 */
export async function submit(
  c: Core,
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
  return c.act(productId, async () => {
    for (let i = 0; i < MAX_CONFLICTS; i++) {
      const existing = await c.store.jobs.read(productId, id);
      if (existing) {
        if (existing.contentHash === hash) return ok({ job: existing, outcome: 'existing' });
        if (existing.stage !== 'queued' && existing.stage !== 'blocked') {
          return fail(
            'IDEMPOTENCY_CONFLICT',
            `job ${id} with this idempotencyKey is ${existing.stage}; its content can no longer change`,
            { jobId: id, stage: existing.stage },
          );
        }
        return supersede(c, productId, id, hash, content, actor);
      }
      const checked = await c.deps.check(productId, id, content.deps, content.parentId);
      if (!checked.ok) return checked;
      const status = await c.deps.status(productId, content.deps, content.depsMode);
      const now = c.clock.now();
      const draft = JobDraft.forNew(
        newDoc(c, productId, id, req.idempotencyKey, content, hash, now, status.met),
        now,
        actor,
        c.machine,
        initialSnapshot(c.machine, content.retry.max, status.met).restored,
        c.versions,
      );
      draft.record('submitted', { version: 1 });
      if (status.failedDep)
        draft.send({ type: 'DEPENDENCY_FAILED' }, { dependencyId: status.failedDep });
      let saved: Stored<JobDoc>;
      try {
        saved = await c.writes.create(draft);
      } catch (e) {
        if (isFleetError(e, 'ALREADY_EXISTS')) continue; // a concurrent submit won: decide again
        throw e;
      }
      if (saved.stage === 'blocked') {
        // A dep may have shipped between our read of it and our write: look again.
        saved = (await c.deps.reevaluate(productId, id)) ?? saved;
      }
      return ok({ job: saved, outcome: 'created' });
    }
    return fail('STORE_UNAVAILABLE', 'submission kept conflicting; try again');
  });
}

async function supersede(
  c: Core,
  productId: string,
  id: string,
  hash: string,
  content: ReturnType<typeof contentOf>,
  actor: string | null,
): Promise<Result<{ job: Stored<JobDoc>; outcome: SubmitOutcome }>> {
  const checked = await c.deps.check(productId, id, content.deps, content.parentId);
  if (!checked.ok) return checked;
  let outcome: SubmitOutcome = 'superseded';
  // Filled by the plan when the supersede adds edges (see the validation below).
  const validation: {
    touch: Stored<JobDoc>[];
    previous: Stored<JobDoc> | null;
  } = { touch: [], previous: null };
  const r = await c.writes.update(productId, id, actor, async (draft) => {
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
        const found = await c.deps.linksOf(productId, ids);
        for (const [jobId, link] of found) seen.set(jobId, link);
        return new Map([...found].map(([jobId, link]) => [jobId, link.deps]));
      });
      if (cycle) {
        return new FleetError('DEPENDENCY_CYCLE', `deps would form a cycle: ${cycle.join(' → ')}`, {
          extra: { cycle },
        });
      }
      const mutable = [...seen.values()]
        .filter((l) => l.id !== id && (l.stage === 'queued' || l.stage === 'blocked'))
        .sort(byId);
      for (const link of mutable.filter((l) => l.id < id)) {
        const job = await c.store.jobs.read(productId, link.id);
        if (job) await c.store.jobs.replace(stripEtag(job), job._etag); // 412 → re-plan
      }
      for (const link of mutable.filter((l) => l.id > id)) {
        const job = await c.store.jobs.read(productId, link.id);
        if (job) validation.touch.push(job);
      }
      validation.previous = draft.before;
    }
    const status = await c.deps.status(productId, content.deps, content.depsMode);
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
        await c.store.jobs.replace(stripEtag(other), other._etag);
      } catch (e) {
        if (!isFleetError(e, 'PRECONDITION_FAILED', 'NOT_FOUND')) throw e;
        break; // it changed since we read it: the check below looks again
      }
    }
    // Looked at again after our write, so no cycle can survive even a race the
    // touches above do not cover: the later of two racing checks sees both writes.
    const cycle = await c.deps.cycle(productId, id, content.deps);
    if (cycle) {
      await restoreContent(c, productId, previous, hash, actor);
      return fail('DEPENDENCY_CYCLE', `deps would form a cycle: ${cycle.join(' → ')}`, {
        cycle,
      });
    }
  }
  if (job.stage === 'blocked') job = (await c.deps.reevaluate(productId, id)) ?? job;
  return ok({ job, outcome });
}

/** Undoes a supersede whose content is still `hash`: the previous content comes back. */
async function restoreContent(
  c: Core,
  productId: string,
  previous: Stored<JobDoc>,
  hash: string,
  actor: string | null,
): Promise<void> {
  await c.writes.update(productId, previous.id, actor, async (draft) => {
    if (draft.doc.contentHash !== hash || (draft.stage !== 'queued' && draft.stage !== 'blocked')) {
      return null;
    }
    const status = await c.deps.status(productId, previous.deps, previous.depsMode);
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

/** A new job's snapshot, restored and persisted (see {@link initialSnapshot}). */
export interface InitialSnapshot {
  readonly restored: Snapshot;
  readonly persisted: Record<string, unknown>;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

const initialSnapshots = new WeakMap<AnyStateMachine, Map<string, InitialSnapshot>>();

/**
 * The snapshot a new job starts from (`queued`, or `blocked` when its deps are unmet),
 * computed once per machine and input and shared, frozen: every new job with the same
 * `maxRetries` starts from the same one (no context factory, no JSON round trip per
 * job). Snapshots are never mutated: a transition makes a new one.
 */
export function initialSnapshot(
  machine: AnyStateMachine,
  maxRetries: number,
  depsMet: boolean,
): InitialSnapshot {
  let byInput = initialSnapshots.get(machine);
  if (byInput === undefined) {
    byInput = new Map();
    initialSnapshots.set(machine, byInput);
  }
  const key = `${maxRetries}:${depsMet}`;
  let found = byInput.get(key);
  if (found === undefined) {
    const [initial] = initialTransition(machine, { maxRetries });
    const snapshot = depsMet
      ? initial
      : machine.resolveState({ value: 'blocked', context: initial.context });
    const persisted = deepFreeze(persistSnapshot(snapshot as Snapshot, machine));
    // Restored from the persisted form, exactly as a draft of a stored job would be.
    const restored = restoreSnapshot(
      { id: 'new', machineVersion: JOB_MACHINE_VERSION, snapshot: persisted },
      machine,
    );
    found = { restored, persisted };
    byInput.set(key, found);
  }
  return found;
}

/** A new job's document: the initial (or blocked) snapshot, version 1, the next `seq`. */
export function newDoc(
  c: Core,
  productId: string,
  id: string,
  idempotencyKey: string,
  content: ReturnType<typeof contentOf>,
  hash: string,
  now: number,
  depsMet: boolean,
): JobDoc {
  const seq = c.nextSeq(now);
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
    snapshot: initialSnapshot(c.machine, content.retry.max, depsMet).persisted,
  };
}
