/**
 * `explainFence`: the reason a FENCED caller gets is the change that ended the epoch it
 * named, found in the stored event stream (on every store).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { explainFence, type FenceReason } from '../../runtime/fence-reason.js';
import type { ClaimGrant } from '../../runtime/types.js';
import { failure, type Harness, makeHarness, must } from '../support/harness.js';
import { STORES } from '../support/stores.js';

describe.each(STORES.map((s) => [s.name, s] as const))('fence reason (%s)', (_name, factory) => {
  let h: Harness;
  afterEach(async () => h?.close());

  const expectReason = async (
    grant: ClaimGrant,
    reason: FenceReason,
    who = { factoryId: 'A', leaseEpoch: grant.lease.leaseEpoch },
  ): Promise<void> => {
    // The call itself is fenced...
    const r = await h.coord.renewLease(h.product, grant.job.id, who);
    expect(failure(r).code).toBe('FENCED');
    // ...and the explanation names the change that ended the epoch, and the epoch now.
    const job = await h.job(grant.job.id);
    expect(await explainFence(h.store, h.product, grant.job.id, who)).toEqual({
      reason,
      leaseEpoch: job.leaseEpoch,
    });
  };

  it('reaped: the lease expired and the supervisor took the job back (then B claimed it)', async () => {
    h = await makeHarness(factory, { leaseMs: 1000 });
    await h.submit();
    const a = await h.claim('A');
    await h.advance(a, 'building');
    h.clock.advance(5000);
    expect(await h.coord.reapExpiredLeases()).toBe(1);
    const b = await h.claim('B');
    await h.advance(b, 'building', 'review');
    await expectReason(a, 'reaped');
  });

  it('released, cancelled, shipped, failed, budget exceeded, dependency failed', async () => {
    h = await makeHarness(factory);
    const cases: Array<[FenceReason, (g: ClaimGrant) => Promise<unknown>]> = [
      [
        'released',
        (g) =>
          h.coord.releaseLease(h.product, g.job.id, {
            factoryId: 'A',
            leaseEpoch: g.lease.leaseEpoch,
          }),
      ],
      ['cancelled', (g) => h.coord.cancel(h.product, g.job.id, 'no longer needed')],
      ['shipped', (g) => h.advance(g, 'building', 'review', 'testing', 'shipped')],
      ['failed', (g) => h.advance(g, 'building', 'failed')],
      [
        'budget_exceeded',
        (g) =>
          h.coord.recordProgress(h.product, g.job.id, {
            factoryId: 'A',
            leaseEpoch: g.lease.leaseEpoch,
            insights: { tokensIn: 1000 },
          }),
      ],
    ];
    for (const [reason, end] of cases) {
      // a capability per case, so a job given back by an earlier case is not claimed again
      const cap = reason.replace('_', '-');
      const job = await h.submit({
        capabilities: [cap],
        ...(reason === 'budget_exceeded' ? { budget: { tokens: 10 } } : {}),
      });
      const grant = await h.claim('A', [cap]);
      expect(grant.job.id).toBe(job.id);
      await end(grant);
      await expectReason(grant, reason);
    }
  });

  it('dependency failed: the dep was cancelled while the dependent was held', async () => {
    h = await makeHarness(factory, { leaseMs: 1000 });
    const dep = await h.submit();
    const depGrant = await h.claim('A');
    await h.advance(depGrant, 'building', 'review', 'testing');
    // soft deps: the dependent may start once its dep reached testing
    await h.submit({ deps: [dep.id], depsMode: 'soft' });
    const grant = await h.claim('B');
    must(await h.coord.cancel(h.product, dep.id));
    await expectReason(grant, 'dependency_failed', {
      factoryId: 'B',
      leaseEpoch: grant.lease.leaseEpoch,
    });
  });

  it('not_holder: the current epoch from the wrong factory; superseded: an epoch never held', async () => {
    h = await makeHarness(factory);
    await h.submit();
    const grant = await h.claim('A');
    await expectReason(grant, 'not_holder', { factoryId: 'B', leaseEpoch: grant.lease.leaseEpoch });
    // epoch 0 was the queued job's: the next change was A's claim
    await expectReason(grant, 'superseded', { factoryId: 'B', leaseEpoch: 0 });
  });

  it('is null for a job that does not exist, and reads nothing it changes', async () => {
    h = await makeHarness(factory);
    expect(await explainFence(h.store, h.product, 'nope', { leaseEpoch: 1 })).toBeNull();
  });
});
