/**
 * Exponential backoff with full jitter (the wait is uniform in [0, min(cap, base·2ⁿ)]),
 * never shorter than what the server asked for in `Retry-After`. Full jitter spreads a
 * fleet of agents that all lost the server at once, so they do not come back together.
 */

/** Backoff bounds, in ms. */
export interface BackoffOptions {
  /** First ceiling. */
  baseMs: number;
  /** Largest ceiling. */
  capMs: number;
  /** Uniform in [0, 1). @defaultValue Math.random */
  random?: () => number;
}

/**
 * The wait before retry number `attempt` (0 for the first retry), at least
 * `retryAfterMs` when the server named one. With `floorMs`, never below it either
 * (the agent's "from 1 s").
 */
export function backoffMs(
  attempt: number,
  options: BackoffOptions & { floorMs?: number },
  retryAfterMs: number | null = null,
): number {
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** Math.min(attempt, 30));
  const jittered = (options.random ?? Math.random)() * ceiling;
  return Math.max(jittered, options.floorMs ?? 0, retryAfterMs ?? 0);
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
