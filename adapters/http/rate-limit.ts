/**
 * Rate limits per caller on every `/fleet` route, with @fastify/rate-limit (a fixed
 * window per caller, in this process's memory).
 *
 * - A caller is what the host's `authenticate` names: a product and a `subject` (on the
 *   standalone server, one token), the same key as the cap on parked long-poll claims
 *   (`claim-waiters.ts`), so both limits count the same callers.
 * - The limit is checked after authentication (a route's guard runs first, still before
 *   the body is read): requests without valid credentials are answered 401 at once and
 *   not counted, and nobody can spend another caller's budget.
 * - Over the limit: `429 RATE_LIMITED` with `Retry-After` (seconds until the window
 *   ends), a problem document like the parked-claims cap's (`limit`,
 *   `retryAfterSeconds`, plus `windowSeconds`). Every answer carries
 *   `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset`.
 * - A request counts once, when it arrives: a long-poll claim that waits and re-checks
 *   for 30 s is one request.
 * - Several Fleet processes (Cosmos DB) each count their own share.
 */
import fastifyRateLimit from '@fastify/rate-limit';
import { FleetError } from '../../runtime/index.js';
import { authOf, callerKey } from './auth.js';
import type { FleetApp } from './route-context.js';

/** A rate: at most `max` requests per caller in each window of `windowMs`. */
export interface RateLimit {
  /** Requests per window (≥ 1). */
  max: number;
  /** The window, in ms (1 s to 1 day). */
  windowMs: number;
}

/** Callers tracked at once; past this the least recent one's count starts afresh. */
const TRACKED_CALLERS = 10_000;

const UNIT_MS: Record<string, number> = {
  s: 1000,
  sec: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
};

/** The longest window: 1 day. */
const MAX_WINDOW_MS = 86_400_000;

/**
 * Parses a rate such as `600/min`, `10/s`, `100/10s` or `5000/hour` (`off` for none).
 * Returns the rate, null for `off`, or what is wrong.
 */
export function parseRateLimit(text: string): RateLimit | null | { error: string } {
  const t = text.trim().toLowerCase();
  if (t === 'off') return null;
  const m = /^(\d+)\s*\/\s*(\d*)\s*([a-z]+)$/.exec(t);
  const unit = m ? UNIT_MS[m[3]!] : undefined;
  const max = m ? Number(m[1]) : Number.NaN;
  const count = m && m[2] !== '' ? Number(m[2]) : 1;
  const windowMs = unit === undefined ? Number.NaN : count * unit;
  if (!Number.isSafeInteger(max) || max < 1 || !(windowMs >= 1000 && windowMs <= MAX_WINDOW_MS)) {
    return {
      error:
        'must be a rate such as 600/min, 10/s, 100/10s or 5000/hour (at least 1 request, a window of 1 s to 1 day), or off',
    };
  }
  return { max, windowMs };
}

/** `600 per minute`, `100 per 10 s`. */
function describe(limit: RateLimit): string {
  const s = limit.windowMs / 1000;
  const per =
    s === 1 ? 'second' : s === 60 ? 'minute' : s === 3600 ? 'hour' : `${Number(s.toFixed(3))} s`;
  return `${limit.max} requests per ${per}`;
}

/**
 * Limits every route registered in `scope` after this call (the plugin calls it in its
 * `/fleet` scope, before the routes). Each route must have a Fleet guard.
 */
export async function registerRateLimit(scope: FleetApp, limit: RateLimit): Promise<void> {
  const windowSeconds = limit.windowMs / 1000;
  await scope.register(fastifyRateLimit, {
    max: limit.max,
    timeWindow: limit.windowMs,
    cache: TRACKED_CALLERS,
    // Runs after the route's guard (also onRequest): the caller is known.
    keyGenerator: (request) => callerKey(authOf(request)),
    errorResponseBuilder: (_request, context) => {
      const retryAfterSeconds = Math.max(1, Math.ceil(context.ttl / 1000));
      return new FleetError(
        'RATE_LIMITED',
        `this caller may make ${describe(limit)}; retry after ${retryAfterSeconds} s`,
        { extra: { limit: context.max, windowSeconds, retryAfterSeconds } },
      );
    },
  });
}
