/**
 * Budgets: a job's token, cost and wall-time limits.
 */
import type { Budget, Usage } from './types.js';

const DURATION = /^P(?!$)(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;

/** Longest wall budget a job may ask for: 365 days, in ms. */
export const MAX_WALL_MS = 365 * 86_400_000;

/**
 * The latest instant Fleet ever computes: 9999-12-31T23:59:59.999Z. Deadlines derived
 * from stored values are clamped to it, so a document written before the schema bounded
 * its durations (or edited by hand) still yields a valid date instead of throwing.
 */
export const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/**
 * ISO-8601 duration (days, hours, minutes, seconds) → ms; throws RangeError if
 * malformed. A duration too long to represent comes back as `Infinity`.
 */
export function durationMs(iso: string): number {
  const m = DURATION.exec(iso);
  if (!m) throw new RangeError(`not an ISO-8601 duration: ${iso}`);
  const [, d, h, min, s] = m;
  return (
    Number(d ?? 0) * 86_400_000 +
    Number(h ?? 0) * 3_600_000 +
    Number(min ?? 0) * 60_000 +
    Math.round(Number(s ?? 0) * 1000)
  );
}

/** All-zero usage. */
export const ZERO_USAGE: Usage = {
  tokensIn: 0,
  tokensOut: 0,
  tokensCached: 0,
  costUsd: 0,
  turns: 0,
  toolCalls: 0,
  filesChanged: 0,
  linesAdded: 0,
  linesDeleted: 0,
};

/**
 * True when `total` is a usage every field of which is exact and finite: counters at
 * most `Number.MAX_SAFE_INTEGER`, cost at most `maxCost`.
 */
export function usageIsRepresentable(total: Usage, maxCost: number): boolean {
  for (const [field, value] of Object.entries(total)) {
    const limit = field === 'costUsd' ? maxCost : Number.MAX_SAFE_INTEGER;
    if (!Number.isFinite(value) || value > limit) return false;
  }
  return true;
}

/** `a + b`, field by field. */
export function addUsage(a: Usage, b: Partial<Usage>): Usage {
  return {
    tokensIn: a.tokensIn + (b.tokensIn ?? 0),
    tokensOut: a.tokensOut + (b.tokensOut ?? 0),
    tokensCached: a.tokensCached + (b.tokensCached ?? 0),
    costUsd: a.costUsd + (b.costUsd ?? 0),
    turns: a.turns + (b.turns ?? 0),
    toolCalls: a.toolCalls + (b.toolCalls ?? 0),
    filesChanged: a.filesChanged + (b.filesChanged ?? 0),
    linesAdded: a.linesAdded + (b.linesAdded ?? 0),
    linesDeleted: a.linesDeleted + (b.linesDeleted ?? 0),
  };
}

/**
 * The wall deadline (ms) of a job first claimed at `firstClaimedAt`, or null; never
 * later than {@link MAX_TIME_MS}, whatever the stored budget says.
 */
export function wallDeadline(budget: Budget | null, firstClaimedAt: number | null): number | null {
  if (!budget?.wall || firstClaimedAt === null) return null;
  let wall: number;
  try {
    wall = durationMs(budget.wall);
  } catch {
    return null; // not a duration (never written by Fleet): no deadline to enforce
  }
  const deadline = firstClaimedAt + wall;
  return Number.isFinite(deadline) ? Math.min(deadline, MAX_TIME_MS) : MAX_TIME_MS;
}

/**
 * Which limit `usage` (or the clock) is over, if any. Tokens are `tokensIn + tokensOut`
 * (cached tokens are not billed as new work); a limit is exceeded when strictly passed.
 */
export function exceededBudget(
  budget: Budget | null,
  usage: Usage,
  firstClaimedAt: number | null,
  now: number,
): 'tokens' | 'usd' | 'wall' | null {
  if (!budget) return null;
  if (budget.tokens !== undefined && usage.tokensIn + usage.tokensOut > budget.tokens)
    return 'tokens';
  if (budget.usd !== undefined && usage.costUsd > budget.usd) return 'usd';
  const deadline = wallDeadline(budget, firstClaimedAt);
  if (deadline !== null && now > deadline) return 'wall';
  return null;
}
