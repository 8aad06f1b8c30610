/**
 * Retry decisions: is an error class retryable, and when is the next attempt due.
 */
import { RetryPolicy as RetryPolicySchema } from './schemas.js';
import type { RetryPolicy } from './types.js';

/** The policy a job gets when it names none (API.md): the schema's defaults, one source. */
export const DEFAULT_RETRY: Readonly<RetryPolicy> = Object.freeze(RetryPolicySchema.parse({}));

/** True when a failure of `errorClass` may be retried under `policy`. */
export function isRetryable(policy: RetryPolicy, errorClass: string | null | undefined): boolean {
  return errorClass != null && policy.on.includes(errorClass);
}

/**
 * Delay before retry number `retry` (1 for the first retry), in ms.
 * `fixed`: `delayMs`; `exponential`: `delayMs * 2^(retry-1)` capped at `maxDelayMs`.
 * Jitter: the delay is scaled by a factor in [0.75, 1.25) (from `random()`, in [0, 1)),
 * then capped at `maxDelayMs` again, so many jobs failing together do not retry in step.
 */
export function backoffDelay(policy: RetryPolicy, retry: number, random: () => number): number {
  const n = Math.max(1, retry);
  const base =
    policy.backoff === 'fixed'
      ? policy.delayMs
      : Math.min(policy.maxDelayMs, policy.delayMs * 2 ** Math.min(n - 1, 40));
  const jittered = base * (0.75 + 0.5 * random());
  const capped = policy.backoff === 'fixed' ? jittered : Math.min(policy.maxDelayMs, jittered);
  return Math.round(capped);
}
