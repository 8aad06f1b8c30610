/**
 * Why a worker call was fenced: which change ended the lease epoch the caller named.
 *
 * Derived from what is already stored, on the FENCED path only (no field is added to
 * the job for it). Every event's `data.leaseEpoch` is the job's epoch after that event,
 * and events are append-only and numbered 1, 2, 3... without a gap, so `leaseEpoch` is
 * monotone in `seq`: the event that ended epoch E is the first one whose
 * `data.leaseEpoch > E`. It is found by a binary search of point reads (a job with 40
 * events costs about 6 reads), never by listing the stream.
 */
import type { DocumentStore } from './document-store.port.js';
import { eventId } from './events.js';
import type { EventDoc, JobDoc } from './types.js';

/**
 * Why a lease epoch ended, as a `FENCED` problem reports it:
 * - `reaped`: the lease expired and the supervisor took the job back;
 * - `released`: the holder gave it back (or a claim over the seat limit was undone);
 * - `cancelled`: an admin cancelled the job;
 * - `requeued`: an admin requeued it;
 * - `shipped`, `failed`: the holder's own final report ended the attempt (a retried
 *   report that had already been applied meets this);
 * - `budget_exceeded`, `dependency_failed`: the job went to `dead_letter`;
 * - `superseded`: the caller's epoch was followed by a newer lease for someone else
 *   (the caller never held that epoch, or lost it in a way recorded before the claim);
 * - `not_holder`: the caller names the job's current epoch (or a later one) but does
 *   not hold the lease.
 */
export const FENCE_REASONS = [
  'reaped',
  'released',
  'cancelled',
  'requeued',
  'superseded',
  'shipped',
  'failed',
  'budget_exceeded',
  'dependency_failed',
  'not_holder',
] as const;

export type FenceReason = (typeof FENCE_REASONS)[number];

/** The reason a fenced caller gets, and the job's epoch now. */
export interface FenceExplanation {
  reason: FenceReason;
  /** The job's current lease epoch. */
  leaseEpoch: number;
}

const leaseEpochOf = (event: EventDoc): number => {
  const e = event.data.leaseEpoch;
  return typeof e === 'number' ? e : 0;
};

/** The reason named by the event that ended an epoch. */
function reasonOf(event: EventDoc): FenceReason {
  switch (event.type) {
    case 'lease_expired':
      return 'reaped';
    case 'released':
      return 'released';
    case 'cancelled':
      return 'cancelled';
    case 'requeued':
      return 'requeued';
    case 'failed':
      return 'failed';
    case 'budget_exceeded':
      return 'budget_exceeded';
    case 'dependency_failed':
      return 'dependency_failed';
    case 'stage_changed':
      return event.data.to === 'shipped' ? 'shipped' : 'superseded';
    default:
      return 'superseded';
  }
}

/**
 * Explains a `FENCED` answer to a caller that presented `caller.leaseEpoch`: null when
 * the job does not exist (the answer is then `NOT_FOUND` anyway). Reads the job and
 * O(log n) of its events; changes nothing.
 */
export async function explainFence(
  store: DocumentStore,
  productId: string,
  jobId: string,
  caller: { leaseEpoch: number },
): Promise<FenceExplanation | null> {
  const job: JobDoc | null = await store.jobs.read(productId, jobId);
  if (!job) return null;
  const current = job.leaseEpoch;
  if (caller.leaseEpoch >= current) return { reason: 'not_holder', leaseEpoch: current };
  // The first seq in [1, eventSeq] whose event's epoch is past the caller's.
  let lo = 1;
  let hi = job.eventSeq;
  let found: EventDoc | null = null;
  while (lo <= hi) {
    const mid = Math.floor((lo + hi) / 2);
    const event = await store.events.read(jobId, eventId(jobId, mid));
    // An event not written yet (its outbox is pending) lies past every written one.
    if (event === null || leaseEpochOf(event) > caller.leaseEpoch) {
      if (event !== null) found = event;
      hi = mid - 1;
    } else {
      lo = mid + 1;
    }
  }
  return { reason: found ? reasonOf(found) : 'superseded', leaseEpoch: current };
}
