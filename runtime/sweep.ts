/**
 * The supervisor's work on the store (the sweep): due timers (expired leases reaped,
 * due retries moved back to `queued`, jobs past a budget ended), outbox repair, a slice
 * of the blocked jobs re-checked against their deps, and event appends with an unknown
 * outcome settled. Every write is etag-guarded and idempotent, so sweeps may run in
 * every process at once. Each job's step is isolated (`Core.isolated`) and the loops
 * yield to the event loop.
 */
import { exceededBudget } from './budget.js';
import { iso, ms } from './clock.js';
import type { Core, SweepReport } from './core.js';
import { isFleetError } from './errors.js';
import { PRUNE_IDLE_MS, prune } from './retention.js';
import { ACTIVE_STAGES, type Stage } from './types.js';
import { Yielder } from './yielder.js';

const ACTIVE = new Set<Stage>(ACTIVE_STAGES);
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

const emptyReport = (): SweepReport => ({
  reaped: 0,
  retried: 0,
  budgetExceeded: 0,
  repaired: 0,
  unblocked: 0,
  failedJobs: 0,
  pruned: 0,
});

/**
 * Reaps leases that expired at or before `now`: each job goes back to `queued` (or
 * `blocked` if its deps are now unmet) with epoch + 1 and its checkpoint, or to
 * `dead_letter` (reason `lease_expired`) if that was its last allowed attempt.
 * Idempotent: a second run finds nothing. Returns how many were reaped.
 */
export async function reapExpiredLeases(c: Core, now = c.clock.now()): Promise<number> {
  return (await sweepWith(c, now, { lease: true, retry: false }, false)).reaped;
}

/** Moves `failed` jobs whose backoff has passed back to `queued` (or `blocked`). */
export async function retryDue(c: Core, now = c.clock.now()): Promise<number> {
  return (await sweepWith(c, now, { lease: false, retry: true }, false)).retried;
}

/**
 * One supervisor sweep: due timers (expired leases, due retries, budgets), outbox
 * repair, a slice of the blocked jobs re-checked (repairing a notification a crash
 * lost; see {@link BLOCKED_REPAIRS_PER_SWEEP}), and event appends with an unknown
 * outcome settled. Every write is etag-guarded and idempotent, so sweeps may run in
 * every process at once. A job whose step fails is logged, counted (`failedJobs`) and
 * skipped; the sweep goes on. It yields to the event loop as it goes.
 */
export async function sweep(c: Core, now = c.clock.now()): Promise<SweepReport> {
  return sweepWith(c, now, { lease: true, retry: true }, true);
}

async function sweepWith(
  c: Core,
  now: number,
  kinds: { lease: boolean; retry: boolean },
  repair: boolean,
): Promise<SweepReport> {
  const from = c.store.mark();
  const report = emptyReport();
  try {
    await sweepDue(c, now, kinds, report);
    if (repair) {
      await repairOutboxes(c, report);
      await repairBlocked(c, report);
      await c.reporter.settleUncertain();
      await pruneFinished(c, now, report);
    }
  } catch (e) {
    await c.reporter.settle(from).catch(() => {});
    throw e;
  }
  await c.reporter.settle(from);
  return report;
}

async function sweepDue(
  c: Core,
  now: number,
  kinds: { lease: boolean; retry: boolean },
  report: SweepReport,
): Promise<void> {
  const y = new Yielder();
  let after: { dueAt: string; productId: string; id: string } | undefined;
  for (;;) {
    const batch = await c.store.jobs.due({
      now: iso(now),
      limit: SWEEP_BATCH,
      ...(after ? { after } : {}),
    });
    for (const job of batch) {
      after = { dueAt: job.dueAt ?? iso(now), productId: job.productId, id: job.id };
      await y.next();
      await c.isolated(
        job,
        'the sweep',
        () =>
          c.mailboxes.run(job.productId, () =>
            processDue(c, job.productId, job.id, now, kinds, report),
          ),
        report,
      );
    }
    if (batch.length < SWEEP_BATCH) break;
  }
}

/** Carries out pending outboxes (a follow-up a crash or a store fault cut off). */
async function repairOutboxes(c: Core, report: SweepReport): Promise<void> {
  const y = new Yielder();
  let budget = OUTBOX_REPAIRS_PER_SWEEP;
  const seen = new Set<string>();
  while (budget > 0) {
    const pending = await c.store.jobs.withOutbox({ limit: Math.min(budget, SWEEP_BATCH) });
    let progressed = 0;
    for (const job of pending) {
      const key = `${job.productId}\u0000${job.id}`;
      if (seen.has(key)) continue;
      seen.add(key);
      budget--;
      await y.next();
      await c.isolated(
        job,
        'outbox repair',
        () =>
          c.mailboxes.run(job.productId, async () => {
            const cur = await c.store.jobs.read(job.productId, job.id);
            if (cur && cur.outbox.length > 0) {
              await c.writes.flush(cur, true);
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
async function repairBlocked(c: Core, report: SweepReport): Promise<void> {
  const y = new Yielder();
  let cursor = c.blockedCursor;
  let budget = BLOCKED_REPAIRS_PER_SWEEP;
  while (budget > 0) {
    const page = await c.store.jobs.listBlocked({ limit: Math.min(budget, SWEEP_BATCH), cursor });
    for (const link of await c.deps.needingReevaluation(page.items)) {
      await y.next();
      await c.isolated(
        link,
        'blocked-job repair',
        async () => {
          const after = await c.mailboxes.run(link.productId, () =>
            c.deps.reevaluate(link.productId, link.id),
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
  c.blockedCursor = cursor;
}

async function processDue(
  c: Core,
  productId: string,
  jobId: string,
  now: number,
  kinds: { lease: boolean; retry: boolean },
  report: SweepReport,
): Promise<void> {
  let did: keyof SweepReport | null = null;
  const r = await c.writes.update(
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
        const status = await c.deps.status(productId, doc.deps, doc.depsMode);
        if (!draft.send({ type: 'LEASE_EXPIRED', now, depsMet: status.met })) did = 'reaped';
      } else if (
        kinds.retry &&
        draft.stage === 'failed' &&
        (doc.notBefore === null || ms(doc.notBefore) <= now)
      ) {
        const status = await c.deps.status(productId, doc.deps, doc.depsMode);
        if (!draft.send({ type: 'RETRY_DUE', now, depsMet: status.met })) did = 'retried';
      }
      return null;
    },
    { now },
  );
  if (!r.ok && !isFleetError(r.error, 'NOT_FOUND')) throw r.error;
  if (r.ok && did !== null) report[did as 'reaped' | 'retried' | 'budgetExceeded']++;
}

// --- Retention (issue 14) ---------------------------------------------------------

/**
 * Deletes the next slice of jobs finished longer than the retention period ago
 * (`retention.ts`), resuming where the last sweep stopped; nothing when retention is
 * off, or for {@link PRUNE_IDLE_MS} after a pass that found nothing to do.
 */
async function pruneFinished(c: Core, now: number, report: SweepReport): Promise<void> {
  if (c.retentionMs <= 0) return;
  if (c.pruneIdleUntil !== null && now < c.pruneIdleUntil) return;
  const r = await prune(c, {
    before: now - c.retentionMs,
    limit: c.prunePerSweep,
    after: c.pruneCursor,
  });
  c.pruneCursor = r.next;
  const idle = r.next === null && r.pruned === 0 && r.failedJobs === 0;
  c.pruneIdleUntil = idle ? now + Math.min(PRUNE_IDLE_MS, c.retentionMs) : null;
  report.pruned += r.pruned;
  report.failedJobs += r.failedJobs;
}
