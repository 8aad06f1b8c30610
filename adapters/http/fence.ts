/**
 * The worker routes' answers that need the coordinator's clock or the event stream:
 * a `FENCED` problem says why the caller's epoch ended (`reason`, see
 * `runtime/fence-reason.ts`) beside the job's current `leaseEpoch`; a lease says how
 * long it has left (`ttlMs`) beside its `expiresAt`, so an agent never does clock-skew
 * arithmetic with the server's wall clock.
 */
import { type Coordinator, explainFence, FleetError, type Result } from '../../runtime/index.js';

/**
 * Unwraps `r` like `must`, but a `FENCED` failure is first given its `reason` (and the
 * job's current `leaseEpoch`), read from the stored events. Only the FENCED path reads.
 */
export async function mustUnfenced<T>(
  coordinator: Coordinator,
  productId: string,
  jobId: string,
  caller: { leaseEpoch: number },
  r: Result<T>,
): Promise<T> {
  if (r.ok) return r.value;
  if (r.error.code !== 'FENCED') throw r.error;
  const why = await explainFence(coordinator.store, productId, jobId, caller);
  if (!why) throw r.error;
  throw new FleetError('FENCED', `${r.error.detail} (${why.reason.replaceAll('_', ' ')})`, {
    extra: { ...r.error.extra, leaseEpoch: why.leaseEpoch, reason: why.reason },
  });
}

/** A lease as answered: `ttlMs` is what is left of it by the coordinator's clock. */
export function leaseWithTtl(
  coordinator: Coordinator,
  lease: { leaseEpoch: number; expiresAt: string },
): { leaseEpoch: number; expiresAt: string; ttlMs: number } {
  const ttlMs = Math.max(0, Date.parse(lease.expiresAt) - coordinator.clock.now());
  return { leaseEpoch: lease.leaseEpoch, expiresAt: lease.expiresAt, ttlMs };
}
