/**
 * Bulk submission: up to {@link SUBMIT_MANY_MAX} jobs in one call, each answered on its
 * own, the new ones written as one unit (one atomic step of one durable commit where
 * the store has `commitMany`; see `WritePath.createMany`).
 *
 * Each item is decided as if the items were submitted alone, one after another, in
 * order: idempotent on its key (same content → the job as it is, `existing`), with its
 * deps checked (they must name a job of the product — one submitted before, or an
 * earlier item of the batch — and may not close a cycle), `blocked` while they are
 * unmet. Two differences from single submission:
 * - a batch never supersedes: an item whose key names a job with other content is
 *   `IDEMPOTENCY_CONFLICT`, whatever the job's stage (submit it alone to replace the
 *   content of a `queued` or `blocked` job), so a batch only ever creates jobs;
 * - an item may name its deps by idempotency key (`depKeys`), so it can depend on an
 *   earlier item of the same batch without knowing its id.
 * One bad item never fails the others; an item that depends on a refused item is
 * refused too (`UNKNOWN_DEPENDENCY`: that job does not exist).
 *
 * Why one unit: measured here (SQLite FULL, 2 cores), one-at-a-time submission commits
 * (and fsyncs) per call or per event-loop turn, about 1.2k jobs/s; a batch of 1,000 is one
 * transaction with one fsync, so its cost is the CPU of deciding and serializing 1,000
 * jobs (see `bench/submit.bench.ts`).
 */
import { contentHash, jobIdFor } from './canonical.js';
import { type Core, MAX_CONFLICTS, parse } from './core.js';
import { evaluateDeps, findCycle } from './deps.js';
import type { JobLink, Stored } from './document-store.port.js';
import { FleetError, fail, isFleetError, ok, type Result } from './errors.js';
import { JobDraft } from './job-draft.js';
import * as S from './schemas.js';
import { contentOf, initialSnapshot, newDoc } from './submission.js';
import type { JobDoc } from './types.js';

/** Items per bulk submission, at most. */
export const SUBMIT_MANY_MAX = 1000;

/** Deps of one job, at most (named by id and by key together). */
const MAX_DEPS = 500;

/** The answer to one item of a bulk submission: its job and outcome, or its problem. */
export type SubmitManyResult = Result<{ job: Stored<JobDoc>; outcome: 'created' | 'existing' }>;

/** One valid item, normalised. */
interface Item {
  index: number;
  id: string;
  key: string;
  hash: string;
  content: ReturnType<typeof contentOf>;
}

/** What one pass decided: per-item answers, with the drafts of the jobs to create. */
interface Decision {
  answers: Array<
    | { kind: 'error'; error: FleetError }
    | { kind: 'stored'; job: Stored<JobDoc> }
    | { kind: 'new'; draft: number }
    | { kind: 'same'; draft: number }
  >;
  drafts: JobDraft[];
}

/**
 * Submits up to {@link SUBMIT_MANY_MAX} jobs (see the file header). `VALIDATION` for the
 * whole call when `items` is not an array or holds too many; otherwise one answer per
 * item, in order. Store failures are thrown, and then none of the batch's new jobs
 * exists (or, on a store without `commitMany` whose compensation also failed, some may
 * remain: a retry of the batch answers them `existing`) and none was reported.
 */
export async function submitMany(
  c: Core,
  productId: string,
  items: unknown,
  actor: string | null = null,
): Promise<Result<SubmitManyResult[]>> {
  if (!Array.isArray(items)) return fail('VALIDATION', 'jobs: must be an array of submissions');
  if (items.length > SUBMIT_MANY_MAX) {
    return fail(
      'VALIDATION',
      `jobs: at most ${SUBMIT_MANY_MAX} submissions per call, got ${items.length}`,
      { max: SUBMIT_MANY_MAX },
    );
  }
  const parsed: Array<Result<Item>> = items.map((input, index) => {
    const r = parse(S.SubmitManyItem, input);
    if (!r.ok) return r;
    const { depKeys, ...req } = r.value;
    if (depKeys !== undefined && depKeys.length > 0) {
      req.deps = [...req.deps, ...depKeys.map((k) => jobIdFor(productId, k))];
    }
    const content = contentOf(req);
    if (content.deps.length > MAX_DEPS) {
      return fail('VALIDATION', `deps: at most ${MAX_DEPS} (deps and depKeys together)`);
    }
    return ok({
      index,
      id: jobIdFor(productId, req.idempotencyKey),
      key: req.idempotencyKey,
      hash: contentHash(content),
      content,
    });
  });
  if (items.length === 0) return ok([]);
  return c.act(productId, async () => {
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      const decision = await decide(c, productId, parsed, actor);
      let saved: Stored<JobDoc>[];
      try {
        saved = await c.writes.createMany(decision.drafts);
      } catch (e) {
        if (isFleetError(e, 'ALREADY_EXISTS')) continue; // a concurrent submit won: decide again
        throw e;
      }
      for (const [i, job] of saved.entries()) {
        if (job.stage === 'blocked') {
          // A dep may have shipped between our read of it and our write: look again.
          saved[i] = (await c.deps.reevaluate(productId, job.id)) ?? job;
        }
      }
      return ok(
        decision.answers.map((a): SubmitManyResult => {
          if (a.kind === 'error') return { ok: false, error: a.error };
          if (a.kind === 'stored') return ok({ job: a.job, outcome: 'existing' });
          const job = saved[a.draft] as Stored<JobDoc>;
          return ok({ job, outcome: a.kind === 'new' ? 'created' : 'existing' });
        }),
      );
    }
    return fail('STORE_UNAVAILABLE', 'submission kept conflicting; try again');
  });
}

/** Decides every item against the store as it is now (inside the product's mailbox). */
async function decide(
  c: Core,
  productId: string,
  parsed: ReadonlyArray<Result<Item>>,
  actor: string | null,
): Promise<Decision> {
  const valid = parsed.flatMap((r) => (r.ok ? [r.value] : []));
  // One look at the store for every id the batch names: its own jobs, deps and parents.
  const named = new Set<string>();
  for (const item of valid) {
    named.add(item.id);
    for (const d of item.content.deps) named.add(d);
    if (item.content.parentId !== null) named.add(item.content.parentId);
  }
  const links = await c.deps.linksOf(productId, [...named]);
  const existing = new Map<string, Stored<JobDoc> | null>();
  for (const item of valid) {
    if (links.has(item.id) && !existing.has(item.id)) {
      existing.set(item.id, await c.store.jobs.read(productId, item.id));
    }
  }
  // Jobs of this batch decided so far: id → its draft's index, link and content hash.
  const batch = new Map<string, { draft: number; link: JobLink; hash: string }>();
  const linkOf = (id: string): JobLink | undefined => batch.get(id)?.link ?? links.get(id);
  // Deps of store jobs met while walking for cycles, kept for the rest of the batch.
  const depsCache = new Map<string, readonly string[] | null>();
  const depsOfMany = async (ids: string[]) => {
    const out = new Map<string, readonly string[] | null>();
    const missing: string[] = [];
    for (const id of ids) {
      const link = linkOf(id);
      if (link !== undefined) out.set(id, link.deps);
      else if (depsCache.has(id)) out.set(id, depsCache.get(id) ?? null);
      else missing.push(id);
    }
    if (missing.length > 0) {
      const found = await c.deps.depsOfMany(productId, missing);
      for (const id of missing) {
        const deps = found.get(id) ?? null;
        depsCache.set(id, deps);
        out.set(id, deps);
      }
    }
    return out;
  };

  const decision: Decision = { answers: [], drafts: [] };
  const refuse = (error: FleetError) => decision.answers.push({ kind: 'error', error });
  for (const r of parsed) {
    if (!r.ok) {
      refuse(r.error);
      continue;
    }
    const { id, hash, content, key } = r.value;
    const earlier = batch.get(id);
    if (earlier !== undefined) {
      if (earlier.hash === hash) decision.answers.push({ kind: 'same', draft: earlier.draft });
      else {
        refuse(
          new FleetError(
            'IDEMPOTENCY_CONFLICT',
            `an earlier item of this batch has idempotencyKey ${JSON.stringify(key)} with different content`,
            { extra: { jobId: id } },
          ),
        );
      }
      continue;
    }
    const stored = existing.get(id);
    if (stored) {
      if (stored.contentHash === hash) decision.answers.push({ kind: 'stored', job: stored });
      else {
        refuse(
          new FleetError(
            'IDEMPOTENCY_CONFLICT',
            stored.stage === 'queued' || stored.stage === 'blocked'
              ? `job ${id} with this idempotencyKey has different content; a batch does not supersede (submit it alone to replace a ${stored.stage} job's content)`
              : `job ${id} with this idempotencyKey is ${stored.stage}; its content can no longer change`,
            { extra: { jobId: id, stage: stored.stage } },
          ),
        );
      }
      continue;
    }
    const parentId = content.parentId;
    if (parentId !== null) {
      if (parentId === id) {
        refuse(new FleetError('VALIDATION', 'parentId: a job cannot be its own parent'));
        continue;
      }
      if (linkOf(parentId) === undefined) {
        refuse(
          new FleetError(
            'UNKNOWN_DEPENDENCY',
            `parentId names no job of this product: ${parentId}`,
            { extra: { unknown: [parentId] } },
          ),
        );
        continue;
      }
    }
    const missing = content.deps.filter((d) => d !== id && linkOf(d) === undefined);
    if (missing.length > 0) {
      refuse(
        new FleetError(
          'UNKNOWN_DEPENDENCY',
          `no job of this product has id ${missing.join(', ')}`,
          {
            extra: { unknown: missing },
          },
        ),
      );
      continue;
    }
    const cycle = await findCycle(id, content.deps, depsOfMany);
    if (cycle) {
      refuse(
        new FleetError('DEPENDENCY_CYCLE', `deps would form a cycle: ${cycle.join(' → ')}`, {
          extra: { cycle },
        }),
      );
      continue;
    }
    const status = evaluateDeps(content.deps, content.depsMode, linkOf);
    const now = c.clock.now();
    const doc = newDoc(c, productId, id, key, content, hash, now, status.met);
    const initial = initialSnapshot(c.machine, content.retry.max, status.met).restored;
    const draft = JobDraft.forNew(doc, now, actor, c.machine, initial, c.versions);
    draft.record('submitted', { version: 1 });
    if (status.failedDep) {
      draft.send({ type: 'DEPENDENCY_FAILED' }, { dependencyId: status.failedDep });
    }
    const index = decision.drafts.push(draft) - 1;
    batch.set(id, {
      draft: index,
      hash,
      link: {
        productId,
        id,
        stage: draft.stage,
        seq: doc.seq,
        deps: content.deps,
        depsMode: content.depsMode,
      },
    });
    decision.answers.push({ kind: 'new', draft: index });
  }
  return decision;
}
