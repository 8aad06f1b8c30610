/**
 * Retention: jobs that ended (`shipped`, `dead_letter`) are deleted with their runs,
 * lease, events and artifact pointers once they have been finished for the retention
 * period, so a store under steady load stops growing. The supervisor's sweep prunes a
 * bounded slice per sweep ({@link PRUNE_PER_SWEEP}), resuming where the last one
 * stopped; operators prune on demand (`Coordinator.prune`, `POST /fleet/admin/prune`).
 *
 * When a job is finished: its `updatedAt` while it is terminal (the write that ended it;
 * an admin requeue of a dead-lettered job makes it live again, and it is not pruned).
 *
 * Dependencies (the decision, README "Retention"): **a job that another job of its
 * product names in `deps` is never pruned**, whatever that dependent's stage. It goes
 * once every job that names it is gone (dependents are pruned first, so a chain is
 * pruned from its end back, one link per pass at worst). So a job's deps always exist
 * while the job does, and they are evaluated exactly as before: a shipped dep is met,
 * a dead-lettered dep fails a hard or soft dependent — a pruned dead-lettered dep can
 * never pass for a met one, and no tombstone is needed. A requeued dependent (an admin
 * requeue of a `dependency_failed` job) still finds its failed dep and fails again.
 * A new submission naming a pruned job is refused `422 UNKNOWN_DEPENDENCY`, as for any
 * id that names no job; resubmitting a pruned job's idempotency key creates a new job.
 * `parentId` is checked at submit only: a pruned parent leaves its children as they are.
 *
 * Safety: each job is looked at inside its product's mailbox (so, in one process, a
 * submission naming it cannot slip between the check and the delete), re-read, and
 * deleted only at the etag it was checked at (`DocumentStore.purgeJob`: one atomic step
 * on SQLite and memory; on Cosmos DB derived documents first and the job last, so an
 * interrupted purge is finished by the next pass). Each job is isolated: one that fails
 * is logged with its id and skipped; the pass goes on. The loop yields to the event loop.
 */
import { iso } from './clock.js';
import type { Core } from './core.js';
import type { FinishedJobKey, PurgedDocuments } from './document-store.port.js';
import { FleetError, isFleetError } from './errors.js';
import { TERMINAL_STAGES } from './types.js';
import { Yielder } from './yielder.js';

/**
 * Finished jobs the supervisor looks at per sweep, at most (`CoordinatorOptions.
 * prunePerSweep`). Measured on SQLite here (2 loaded cores, 1.5 KB bodies, 8 events a
 * job): a pruned job costs about 390 µs (its read, the dependents check, and one
 * transaction deleting the job, its run, lease and events), so 4096 jobs are some 1.6 s
 * of work, done in 4 ms slices between which the server serves requests. At the
 * default interval (5 s) that is up to some 800 jobs a second: more than one Fleet
 * process finishes (DESIGN.md: ≈ 470 jobs/s in process), so pruning keeps pace at peak
 * load, and a quiet sweep costs one index query.
 */
export const PRUNE_PER_SWEEP = 4096;

/**
 * After a sweep's pass found nothing to prune (it deleted nothing and reached the last
 * finished job), the next sweeps skip pruning for this long (or the retention period,
 * if shorter): a quiet store is asked at most once a minute, not every sweep, while a
 * busy one (each pass deletes something) is pruned every sweep. Pruning a job a minute
 * late does not matter against a retention of days.
 */
export const PRUNE_IDLE_MS = 60_000;

/** Finished jobs fetched per store query. */
const PRUNE_BATCH = 128;

const TERMINAL = new Set<string>(TERMINAL_STAGES);

/** What to prune. */
export interface PruneOptions {
  /** Jobs finished before this time (epoch ms) go. */
  before: number;
  /** Look at most this many finished jobs (a bounded pass). */
  limit: number;
  /** Count what would go, delete nothing. @defaultValue false */
  dryRun?: boolean;
  /** Resume after this position (a previous report's `next`). @defaultValue from the oldest */
  after?: FinishedJobKey | null;
}

/** The counts of one pruning pass. */
export interface PruneReport {
  /** Terminal jobs finished before the cutoff that the pass looked at. */
  examined: number;
  /** Jobs deleted (a dry run: that would be deleted now). */
  pruned: number;
  /** Of those, by the stage they ended in. */
  prunedByStage: { shipped: number; dead_letter: number };
  /** Jobs past the cutoff kept because another job names them in its deps. */
  kept: number;
  /** Derived documents deleted with them (none on a dry run). */
  documents: PurgedDocuments;
  /** Jobs whose step failed (logged with their id and skipped). */
  failedJobs: number;
  /** Where a next pass resumes, or null when this one reached the last finished job. */
  next: FinishedJobKey | null;
}

export const emptyPruneReport = (): PruneReport => ({
  examined: 0,
  pruned: 0,
  prunedByStage: { shipped: 0, dead_letter: 0 },
  kept: 0,
  documents: { runs: 0, leases: 0, events: 0, artifacts: 0 },
  failedJobs: 0,
  next: null,
});

/**
 * One pruning pass (see the file header): looks at up to `limit` terminal jobs finished
 * before `before`, oldest first, from `after`, and deletes (or, dry, counts) those no
 * job depends on. A store without `purgeJob` prunes nothing (`NOT_IMPLEMENTED`).
 */
export async function prune(c: Core, o: PruneOptions): Promise<PruneReport> {
  const report = emptyPruneReport();
  const purge = c.store.purgeJob?.bind(c.store);
  if (purge === undefined && o.dryRun !== true) {
    throw new FleetError('NOT_IMPLEMENTED', `the ${c.store.kind} store cannot delete jobs`);
  }
  const before = iso(o.before);
  const y = new Yielder();
  let after: FinishedJobKey | null = o.after ?? null;
  let left = o.limit;
  while (left > 0) {
    const want = Math.min(left, PRUNE_BATCH);
    const batch = await c.store.jobs.finishedBefore({
      before,
      limit: want,
      ...(after === null ? {} : { after }),
    });
    for (const ref of batch) {
      after = { finishedAt: ref.finishedAt, id: ref.id, productId: ref.productId };
      report.examined++;
      left--;
      await y.next();
      let done = false;
      await c.isolated(ref, 'pruning', async () => {
        await c.mailboxes.run(ref.productId, async () => {
          const job = await c.store.jobs.read(ref.productId, ref.id);
          // Gone, live again (requeued), or finished later than the cutoff: not now.
          if (job === null || !TERMINAL.has(job.stage) || job.updatedAt >= before) return;
          // A follow-up still pending (its dependents' cascade): the sweep carries it out first.
          if (job.outbox.length > 0) return;
          if ((await c.store.jobs.dependents(ref.productId, ref.id)).length > 0) {
            report.kept++;
            return;
          }
          if (o.dryRun !== true) {
            let purged: PurgedDocuments | null;
            try {
              purged = await purge!(ref.productId, ref.id, job._etag);
            } catch (e) {
              // It changed since the read (another process requeued it): not now.
              if (isFleetError(e, 'PRECONDITION_FAILED')) return;
              throw e;
            }
            if (purged === null) return;
            for (const k of ['runs', 'leases', 'events', 'artifacts'] as const) {
              report.documents[k] += purged[k];
            }
          }
          report.pruned++;
          if (job.stage === 'shipped') report.prunedByStage.shipped++;
          else report.prunedByStage.dead_letter++;
        });
        done = true;
      });
      if (!done) report.failedJobs++;
    }
    if (batch.length < want) {
      after = null;
      break;
    }
  }
  report.next = after;
  return report;
}
