/**
 * Follows one job's event stream from the store: every event after a given `seq`, in
 * order, each once, for as long as the caller wants. The store is the source of truth:
 * events are read with `Coordinator.listEvents` (which also settles a pending outbox);
 * the coordinator's `subscribe` only wakes the reader early, and a periodic re-read
 * picks up events that other processes stored (they are not reported here). Read-only.
 */
import type { Coordinator } from './coordinator.js';
import { isFleetError } from './errors.js';
import type { EventDoc } from './types.js';

export interface FollowOptions {
  /** Deliver events with `seq` greater than this. @defaultValue 0 (from the first) */
  afterSeq?: number;
  /** Ends the follow (the generator returns). */
  signal: AbortSignal;
  /** Re-read the store this often without a wake-up, ms. @defaultValue 2000 */
  recheckMs?: number;
  /** Events read per store call. @defaultValue 500 */
  batch?: number;
}

/** What the follower needs of a coordinator (an object literal in tests). */
export type FollowSource = Pick<Coordinator, 'listEvents' | 'subscribe'>;

/**
 * Yields batches of the job's events in `seq` order: first everything stored after
 * `afterSeq`, then each new batch as it appears. Never yields an event twice or out of
 * order. Returns when `signal` aborts, or when the job does not exist (`NOT_FOUND`);
 * other read failures are retried at the next re-check.
 */
export async function* followJobEvents(
  coordinator: FollowSource,
  productId: string,
  jobId: string,
  options: FollowOptions,
): AsyncGenerator<EventDoc[], void, undefined> {
  const { signal } = options;
  const recheckMs = options.recheckMs ?? 2000;
  const batch = options.batch ?? 500;
  let after = options.afterSeq ?? 0;
  let dirty = true;
  let wake: (() => void) | null = null;
  const poke = (): void => {
    dirty = true;
    wake?.();
  };
  const unsubscribe = coordinator.subscribe((e) => {
    if (e.jobId === jobId && e.productId === productId && e.seq > after) poke();
  });
  signal.addEventListener('abort', poke, { once: true });
  try {
    while (!signal.aborted) {
      if (dirty) {
        dirty = false;
        const page = await coordinator.listEvents(productId, jobId, {
          cursor: String(after),
          limit: batch,
        });
        if (!page.ok) {
          if (isFleetError(page.error, 'NOT_FOUND')) return;
        } else {
          const fresh = page.value.items.filter((e) => e.seq > after);
          if (fresh.length > 0) {
            after = fresh[fresh.length - 1]!.seq;
            if (signal.aborted) return;
            yield fresh;
          }
          // A full page: there may be more right now.
          if (page.value.nextCursor !== null) dirty = true;
        }
        if (dirty) continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          dirty = true;
          resolve();
        }, recheckMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        if (dirty || signal.aborted) wake();
      });
      wake = null;
    }
  } finally {
    unsubscribe();
    signal.removeEventListener('abort', poke);
  }
}
