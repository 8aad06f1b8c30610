/**
 * Claim: hands the best eligible job to a factory under a new lease epoch. Selection
 * reads the store's claim index (cost independent of queue depth): among the product's
 * `queued` jobs past `notBefore` whose capabilities the factory has, the highest
 * priority, then the oldest, or (with a claim spread) one of the oldest few of the best
 * priority. The write is etag-guarded: a lost race looks again. A factory never holds
 * more than its seat limit (see `keepsSeat` for the race between processes).
 */
import { exceededBudget } from './budget.js';
import { iso } from './clock.js';
import { type Core, MAX_CONFLICTS, parse, STORE_DOWN } from './core.js';
import type { Stored } from './document-store.port.js';
import { isFleetError, ok, type Result } from './errors.js';
import { JobDraft } from './job-draft.js';
import * as S from './schemas.js';
import type { ClaimGrant, ClaimInput, JobDoc } from './types.js';

/** Claim candidates fetched per selection round. */
const CLAIM_CANDIDATES = 8;
/** Most candidates fetched when the head of the queue is unreadable. */
export const MAX_CANDIDATES = 256;

/**
 * Hands the best eligible job to the factory: among the product's `queued` jobs past
 * `notBefore` whose capabilities the factory has, the highest priority, then the
 * oldest (submission sequence). Moves it to `assigned` under a new epoch and opens a
 * run. Returns null when nothing is eligible or the factory is at its `seatLimit`.
 * A job is handed out at most once per epoch, however many claims race.
 */
export async function claimNextJob(
  c: Core,
  productId: string,
  input: ClaimInput,
): Promise<Result<ClaimGrant | null>> {
  const parsed = parse(S.ClaimInput, input);
  if (!parsed.ok) return parsed;
  const { factoryId } = parsed.value;
  return c.act(productId, async () => {
    const factory = await c.store.factories.read(productId, factoryId);
    const capabilities = [...(parsed.value.capabilities ?? factory?.capabilities ?? [])].sort();
    if (factory?.seatLimit != null) {
      const held = await c.store.jobs.countHeld(productId, factoryId);
      if (held >= factory.seatLimit) return ok(null);
    }
    // The head of the queue is normally ours (the mailbox serialises this process's
    // claims), so read one candidate (or the spread's worth); after a lost race, more.
    let limit = c.claimSpread;
    for (let round = 0; round < MAX_CONFLICTS; round++) {
      const now = c.clock.now();
      const candidates = await c.store.jobs.claimCandidates({
        productId,
        capabilities,
        now: iso(now),
        limit,
      });
      if (candidates.length === 0) return ok(null);
      let readable = 0;
      for (const candidate of spread(c, candidates)) {
        const won = await tryClaim(c, candidate, factoryId, now);
        if (won === 'skipped') continue;
        readable++;
        if (won === null) continue;
        if (factory?.seatLimit != null && !(await keepsSeat(c, won, factory.seatLimit))) {
          // Over the limit, and this grant is the one to go: hand it back as if it had
          // never been made (no attempt counted, no wall clock started).
          await c.writes.update(productId, won.job.id, factoryId, (draft) =>
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
async function keepsSeat(c: Core, won: ClaimGrant, seatLimit: number): Promise<boolean> {
  const { productId, holderFactoryId } = won.job;
  const held = await c.store.jobs.countHeld(productId, holderFactoryId ?? '');
  if (held <= seatLimit) return true;
  const keep = await c.store.jobs.heldBy(productId, holderFactoryId ?? '', seatLimit);
  return keep.some((k) => k.id === won.job.id);
}

/**
 * The order in which to try candidates (best first): with a spread of `k`, one of the
 * first `k` of the best priority, chosen at random, goes first; the rest keep their order.
 */
function spread(c: Core, candidates: Stored<JobDoc>[]): Stored<JobDoc>[] {
  if (c.claimSpread === 1 || candidates.length < 2) return candidates;
  const best = candidates[0]?.priority;
  let pool = 1;
  while (pool < candidates.length && pool < c.claimSpread && candidates[pool]?.priority === best) {
    pool++;
  }
  const pick = Math.floor(c.random() * pool);
  if (pick === 0) return candidates;
  const order = [...candidates];
  const [chosen] = order.splice(pick, 1);
  return chosen === undefined ? candidates : [chosen, ...order];
}

/**
 * One claim attempt at the candidate's etag; null if it was lost (or the job turned
 * out not to be claimable), `skipped` if it cannot be processed at all.
 */
async function tryClaim(
  c: Core,
  candidate: Stored<JobDoc>,
  factoryId: string,
  now: number,
): Promise<(ClaimGrant & { firstClaimedBefore: number | null }) | 'skipped' | null> {
  let draft: JobDraft;
  try {
    if (candidate.outbox.length > 0) await c.writes.flush(candidate, false);
    draft = new JobDraft(candidate, now, factoryId, c.machine, undefined, c.versions);
  } catch (e) {
    if (isFleetError(e, ...STORE_DOWN)) throw e;
    // One unreadable job must not stop the rest of the queue: skip it, loudly.
    c.countIsolated();
    c.log.error(
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
      : await c.deps.status(candidate.productId, candidate.deps, candidate.depsMode);
  if (exceeded) {
    // Its wall budget ran out while it waited: it will not be handed out again.
    draft.send({ type: 'BUDGET_EXCEEDED' }, { exceeded });
  } else if (status?.failedDep) {
    draft.send({ type: 'DEPENDENCY_FAILED' }, { dependencyId: status.failedDep });
  } else if (status && !status.met) {
    draft.send({ type: 'DEPS_UNMET' });
  } else if (draft.send({ type: 'CLAIM', factoryId, now, expiresAt: now + c.leaseMs })) {
    return null;
  }
  let saved: Stored<JobDoc>;
  try {
    saved = await c.writes.write(draft, candidate._etag);
  } catch (e) {
    if (isFleetError(e, 'PRECONDITION_FAILED', 'NOT_FOUND')) return null;
    throw e;
  }
  if (saved.stage !== 'assigned') return null;
  const run = saved.run;
  return {
    job: saved,
    lease: {
      leaseEpoch: saved.leaseEpoch,
      expiresAt: saved.leaseExpiresAt ?? iso(now + c.leaseMs),
    },
    run: { id: run?.id ?? '', attempt: run?.attempt ?? saved.attempt },
    firstClaimedBefore,
  };
}
