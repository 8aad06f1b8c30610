/**
 * Budgets: tokens and usd exceeded by reported insights (on a PATCH or a progress
 * report) end the job in `dead_letter` (reason `budget_exceeded`), close the run with
 * exit `budget_exceeded` and fence the former holder out; the wall budget is enforced
 * by the sweep and before any worker call; a job that shipped stays shipped.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { iso, ms } from '../../runtime/clock.js';
import type { Result } from '../../runtime/errors.js';
import type { Budget, ClaimGrant, Insights, JobDoc } from '../../runtime/types.js';
import { failure, type Harness, makeHarness, must } from '../support/harness.js';
import { STORES } from '../support/stores.js';

const HOUR = 3_600_000;

describe.each(STORES.map((s) => [s.name, s] as const))('budgets (%s)', (_name, factory) => {
  let h: Harness;
  beforeEach(async () => {
    // Leases long enough that a wall budget of an hour runs out before any lease does.
    h = await makeHarness(factory, { leaseMs: 4 * HOUR });
  });
  afterEach(async () => {
    await h.close();
  });

  const start = async (budget: Budget): Promise<{ job: JobDoc; grant: ClaimGrant }> => {
    const job = await h.submit({ budget });
    const grant = await h.claim('f1');
    expect(grant.job.id).toBe(job.id);
    return { job, grant };
  };

  const worker = (g: ClaimGrant) => ({ factoryId: 'f1', leaseEpoch: g.lease.leaseEpoch });

  const patch = (
    g: ClaimGrant,
    to: 'building' | 'review' | 'testing' | 'shipped',
    insights?: Insights,
  ) =>
    h.coord.transition(h.product, g.job.id, {
      ...worker(g),
      to,
      ...(insights ? { insights } : {}),
    });

  const progress = (g: ClaimGrant, insights: Insights) =>
    h.coord.recordProgress(h.product, g.job.id, { ...worker(g), insights });

  /** The job is dead for its budget, its run closed, and the former holder fenced out. */
  const expectBudgetDeath = async (g: ClaimGrant, exceeded: 'tokens' | 'usd' | 'wall') => {
    const job = await h.job(g.job.id);
    expect(job.stage).toBe('dead_letter');
    expect(job.deadReason).toBe('budget_exceeded');
    expect(job.holderFactoryId).toBeNull();
    expect(job.leaseEpoch).toBeGreaterThan(g.lease.leaseEpoch);
    expect(job.run).toBeNull();
    const runs = must(await h.coord.listRuns(h.product, job.id)).items;
    expect(runs).toHaveLength(1);
    expect(runs[0]?.exit).toBe('budget_exceeded');
    expect(runs[0]?.endedAt).toBe(iso(h.clock.now()));
    const ev = (await h.events(job.id)).find((e) => e.type === 'budget_exceeded');
    expect(ev?.data).toMatchObject({ to: 'dead_letter', deadReason: 'budget_exceeded', exceeded });
    const calls: Array<Result<unknown>> = [
      await h.coord.transition(h.product, job.id, { ...worker(g), to: 'building' }),
      await h.coord.recordProgress(h.product, job.id, { ...worker(g), insights: { turns: 1 } }),
      await h.coord.renewLease(h.product, job.id, worker(g)),
      await h.coord.releaseLease(h.product, job.id, worker(g)),
    ];
    for (const r of calls) {
      expect(failure(r).code).toBe('FENCED');
    }
    // …and the job is not handed out again.
    expect(must(await h.coord.claimNextJob(h.product, { factoryId: 'f2' }))).toBeNull();
    return job;
  };

  describe('tokens', () => {
    it('insights on a PATCH pushing tokensIn + tokensOut over the budget → dead_letter', async () => {
      const { grant } = await start({ tokens: 1000 });
      must(await patch(grant, 'building', { tokensIn: 300, tokensOut: 200 }));
      expect((await h.job(grant.job.id)).stage).toBe('building');
      await patch(grant, 'review', { tokensIn: 400, tokensOut: 101 });
      const job = await expectBudgetDeath(grant, 'tokens');
      expect(job.usage.tokensIn).toBe(700);
      expect(job.usage.tokensOut).toBe(301);
      const runs = must(await h.coord.listRuns(h.product, job.id)).items;
      expect(runs[0]?.insights.tokensIn).toBe(700);
    });

    it('recordProgress pushing tokens over the budget → dead_letter', async () => {
      const { grant } = await start({ tokens: 1000 });
      must(await patch(grant, 'building'));
      must(await progress(grant, { tokensIn: 1001 }));
      await expectBudgetDeath(grant, 'tokens');
    });

    it('exactly at the budget, and with cached tokens over it, nothing happens', async () => {
      const { grant } = await start({ tokens: 1000 });
      must(await patch(grant, 'building', { tokensIn: 600, tokensOut: 400, tokensCached: 50_000 }));
      const job = await h.job(grant.job.id);
      expect(job.stage).toBe('building');
      expect(job.deadReason).toBeNull();
      expect(job.leaseEpoch).toBe(grant.lease.leaseEpoch);
      expect(job.usage.tokensIn + job.usage.tokensOut).toBe(1000);
      must(await patch(grant, 'review'));
    });
  });

  describe('usd', () => {
    it('recordProgress: within budget nothing happens; the report that passes it kills the job', async () => {
      const { grant } = await start({ usd: 1 });
      must(await patch(grant, 'building'));
      const mid = must(await progress(grant, { costUsd: 0.6 }));
      expect(mid.stage).toBe('building');
      expect(mid.leaseEpoch).toBe(grant.lease.leaseEpoch);
      expect(mid.usage.costUsd).toBeCloseTo(0.6);
      must(await progress(grant, { costUsd: 0.6 }));
      const job = await expectBudgetDeath(grant, 'usd');
      expect(job.usage.costUsd).toBeCloseTo(1.2);
    });

    it('a PATCH whose insights pass the usd budget → dead_letter', async () => {
      const { grant } = await start({ usd: 2, tokens: 1_000_000 });
      must(await patch(grant, 'building'));
      must(await patch(grant, 'review', { costUsd: 2.5 }));
      await expectBudgetDeath(grant, 'usd');
    });

    it('a job without a budget never dies of usage', async () => {
      const job = await h.submit();
      const grant = await h.claim('f1');
      must(await patch(grant, 'building', { tokensIn: 1e9, costUsd: 1e6 }));
      expect((await h.job(job.id)).stage).toBe('building');
    });
  });

  describe('wall', () => {
    it('the sweep sends a job past firstClaimedAt + PT1H to dead_letter', async () => {
      const { grant } = await start({ wall: 'PT1H' });
      const claimedAt = h.clock.now();
      expect(ms(grant.job.firstClaimedAt ?? '')).toBe(claimedAt);
      must(await patch(grant, 'building'));
      h.clock.advance(HOUR);
      // Exactly at the deadline it is not yet exceeded.
      const first = await h.coord.sweep();
      expect(first.budgetExceeded).toBe(0);
      expect((await h.job(grant.job.id)).stage).toBe('building');
      h.clock.advance(1);
      const report = await h.coord.sweep();
      expect(report.budgetExceeded).toBe(1);
      await expectBudgetDeath(grant, 'wall');
      // Idempotent.
      expect((await h.coord.sweep()).budgetExceeded).toBe(0);
    });

    it('within the wall budget the sweep changes nothing', async () => {
      const { grant } = await start({ wall: 'PT1H' });
      must(await patch(grant, 'building'));
      h.clock.advance(HOUR - 1);
      const before = await h.dump(grant.job.id);
      const report = await h.coord.sweep();
      expect(report.budgetExceeded).toBe(0);
      expect(await h.dump(grant.job.id)).toEqual(before);
    });

    it('a worker call after the deadline (no sweep) is FENCED and the job is in dead_letter', async () => {
      const { grant } = await start({ wall: 'PT1H' });
      must(await patch(grant, 'building'));
      h.clock.advance(HOUR + 1);
      const err = failure(await patch(grant, 'review'));
      expect(err.code).toBe('FENCED');
      await expectBudgetDeath(grant, 'wall');
    });

    it.each(['renew', 'progress', 'release'] as const)(
      'a %s after the deadline (no sweep) is FENCED too',
      async (call) => {
        const { grant } = await start({ wall: 'PT1H' });
        h.clock.advance(HOUR + 1);
        const r: Result<unknown> =
          call === 'renew'
            ? await h.coord.renewLease(h.product, grant.job.id, worker(grant))
            : call === 'progress'
              ? await progress(grant, { turns: 1 })
              : await h.coord.releaseLease(h.product, grant.job.id, worker(grant));
        expect(failure(r).code).toBe('FENCED');
        const job = await h.job(grant.job.id);
        expect(job.stage).toBe('dead_letter');
        expect(job.deadReason).toBe('budget_exceeded');
      },
    );

    it('the wall runs from the first claim across attempts: a released job past it is not handed out again', async () => {
      const { grant } = await start({ wall: 'PT1H' });
      must(await h.coord.releaseLease(h.product, grant.job.id, worker(grant)));
      expect((await h.job(grant.job.id)).stage).toBe('queued');
      h.clock.advance(HOUR + 1);
      expect(must(await h.coord.claimNextJob(h.product, { factoryId: 'f2' }))).toBeNull();
      const job = await h.job(grant.job.id);
      expect(job.stage).toBe('dead_letter');
      expect(job.deadReason).toBe('budget_exceeded');
    });

    it('an unclaimed job has no wall clock running', async () => {
      const job = await h.submit({ budget: { wall: 'PT1H' } });
      h.clock.advance(5 * HOUR);
      await h.coord.sweep();
      expect((await h.job(job.id)).stage).toBe('queued');
      const g = await h.claim('f1');
      expect(g.job.id).toBe(job.id);
    });
  });

  describe('requeue', () => {
    it('an admin requeue of a budget-dead job resets its usage and wall clock', async () => {
      const { grant } = await start({ tokens: 100, wall: 'PT1H' });
      must(await progress(grant, { tokensIn: 101 }));
      expect((await h.job(grant.job.id)).deadReason).toBe('budget_exceeded');
      h.clock.advance(2 * HOUR);
      const requeued = must(await h.coord.requeue(h.product, grant.job.id));
      expect(requeued.stage).toBe('queued');
      expect(requeued.usage.tokensIn).toBe(0);
      expect(requeued.firstClaimedAt).toBeNull();
      const g2 = await h.claim('f1');
      expect(g2.job.id).toBe(grant.job.id);
      must(await progress(g2, { tokensIn: 100 }));
      must(await patch(g2, 'building'));
      const job = await h.job(grant.job.id);
      expect(job.stage).toBe('building');
      expect(job.firstClaimedAt).toBe(iso(h.clock.now()));
    });
  });

  describe('shipped stays shipped', () => {
    it('a final report over the token budget on the ship PATCH leaves the job shipped', async () => {
      const { grant } = await start({ tokens: 100, usd: 0.01 });
      must(await patch(grant, 'building'));
      must(await patch(grant, 'review'));
      must(await patch(grant, 'testing'));
      const shipped = must(await patch(grant, 'shipped', { tokensIn: 5000, costUsd: 3 }));
      expect(shipped.stage).toBe('shipped');
      const job = await h.job(grant.job.id);
      expect(job.stage).toBe('shipped');
      expect(job.deadReason).toBeNull();
      expect(job.usage.tokensIn).toBe(5000);
      const runs = must(await h.coord.listRuns(h.product, job.id)).items;
      expect(runs[0]?.exit).toBe('shipped');
      expect(runs[0]?.insights.tokensIn).toBe(5000);
      expect((await h.events(job.id)).some((e) => e.type === 'budget_exceeded')).toBe(false);
    });

    it('a shipped job with a wall budget is left alone by later sweeps', async () => {
      const { grant } = await start({ wall: 'PT1H' });
      await h.advance(grant, 'building', 'review', 'testing', 'shipped');
      h.clock.advance(2 * HOUR);
      const report = await h.coord.sweep();
      expect(report.budgetExceeded).toBe(0);
      expect((await h.job(grant.job.id)).stage).toBe('shipped');
    });
  });
});
