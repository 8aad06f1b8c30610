/**
 * A defect the extended simulator found (issue 10, item 9, not fully fixed): two
 * processes claiming at once for a factory with seat limit 1 can leave it holding two
 * jobs. `npm run sim -- --seeds 2000` found it at seed 441; fast-check shrank it to the
 * schedule below. Replayed:
 *
 * ```
 * #0 submit pa/k0 v2 deps[] → created (queued)          (priority low)
 * #1 f2 claims pa → pa/k0@1
 * #2 submit pa/k3 v0 deps[] → created (queued)          (priority medium)
 * #3 arm fault before jobs.replace (skip 1)
 * #4 tick +30001ms (supervisor sweep ×1)                 k0 reaped; its outbox clear fails
 * #5 f2 (seat limit 1) claims pa through two processes at once → pa/k3@1, pa/k0@3
 *    VIOLATION f2 holds 2 jobs of pa after two processes claimed its one seat at once
 * ```
 *
 * Process 0 grants k3 (the higher priority) and counts the factory's leases before
 * process 1's grant of k0 lands (k0's pending outbox is carried out first): it counts
 * 1 and keeps k3. Process 1 counts 2 and keeps the oldest submission, k0: both grants
 * stand. `keepsSeat` (runtime/claim.ts) documents this case ("the factory holds one
 * lease over its limit until one ends"); the issue asks that the race leave one grant
 * standing. Pinned with `it.fails` (it fails the day the race is fixed, and must then
 * become a plain test): the fix needs an order of grants that every process sees alike
 * (or a seat count written atomically with the claim), a design change left open. The
 * simulator's own check holds the documented contract (never more than one lease over).
 */
import { describe, expect, it } from 'vitest';
import { cmd } from './schedule.js';
import { simulate } from './simulator.js';

/** Seed 441's schedule, shrunk. */
const SEED_441 = {
  rngSeed: 0,
  cmds: [
    cmd('submit', 0, 542, 0),
    cmd('claim', 851, 0, 0),
    cmd('submit', 230, 0, 0),
    cmd('fault', 0, 0, 322),
    cmd('tick', 519, 0, 0),
    cmd('seatrace', 29, 0, 0),
  ],
};

describe('9: seat-limit race between processes (found by the simulator)', () => {
  it.fails('9: two processes claiming one seat at once never leave the factory over its seat limit, whatever the priorities and pending outboxes', async () => {
    const result = await simulate(SEED_441, { store: 'memory', seatRaceMaxHeld: 1 });
    expect(result.violations).toEqual([]);
  });

  it('9: the same race keeps the documented contract: at most one lease over the limit, never a free seat left empty', async () => {
    const result = await simulate(SEED_441, { store: 'memory' });
    expect(result.violations).toEqual([]);
  });
});
