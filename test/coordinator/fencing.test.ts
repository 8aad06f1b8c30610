import { afterEach, describe, expect, it } from 'vitest';
import type { Result } from '../../runtime/errors.js';
import type { ClaimGrant } from '../../runtime/types.js';
import { failure, type Harness, makeHarness, must } from '../support/harness.js';
import { STORES } from '../support/stores.js';

type Call = (
  h: Harness,
  grant: ClaimGrant,
  who: { factoryId: string; leaseEpoch: number },
) => Promise<unknown>;

/** Every worker call, each with the identity it presents. */
const WORKER_CALLS: Record<string, Call> = {
  patch: (h, g, who) => h.coord.transition(h.product, g.job.id, { ...who, to: 'building' }),
  renew: (h, g, who) => h.coord.renewLease(h.product, g.job.id, who),
  release: (h, g, who) => h.coord.releaseLease(h.product, g.job.id, who),
  checkpoint: (h, g, who) =>
    h.coord.recordProgress(h.product, g.job.id, {
      ...who,
      checkpoint: { wipBranch: 'wip', wipCommit: 'abc' },
    }),
  artifact: (h, g, who) =>
    h.coord.recordProgress(h.product, g.job.id, {
      ...who,
      artifacts: [{ name: 'log', uri: 'blob://x' }],
    }),
  insights: (h, g, who) =>
    h.coord.recordProgress(h.product, g.job.id, { ...who, insights: { tokensIn: 10 } }),
};

describe.each(STORES.map((s) => [s.name, s] as const))('fencing (%s)', (_name, factory) => {
  let h: Harness;
  afterEach(async () => h?.close());

  for (const [name, call] of Object.entries(WORKER_CALLS)) {
    it(`${name}: a stale epoch is FENCED and nothing in the store changes`, async () => {
      h = await makeHarness(factory);
      const job = await h.submit();
      const grant = await h.claim('A');
      const before = await h.dump(job.id);
      const r = (await call(h, grant, {
        factoryId: 'A',
        leaseEpoch: grant.lease.leaseEpoch - 1,
      })) as never;
      expect(failure(r).code).toBe('FENCED');
      expect(await h.dump(job.id)).toEqual(before);
    });

    it(`${name}: a factory that does not hold the lease is FENCED and nothing changes`, async () => {
      h = await makeHarness(factory);
      const job = await h.submit();
      const grant = await h.claim('A');
      const before = await h.dump(job.id);
      const r = (await call(h, grant, {
        factoryId: 'B',
        leaseEpoch: grant.lease.leaseEpoch,
      })) as never;
      expect(failure(r).code).toBe('FENCED');
      expect(await h.dump(job.id)).toEqual(before);
    });

    it(`${name}: the holder at the current epoch succeeds`, async () => {
      h = await makeHarness(factory);
      await h.submit();
      const grant = await h.claim('A');
      const r = (await call(h, grant, { factoryId: 'A', leaseEpoch: grant.lease.leaseEpoch })) as {
        ok: boolean;
      };
      expect(r.ok).toBe(true);
    });
  }

  it('fencing is checked before the lifecycle: a stale caller with an invalid move gets FENCED', async () => {
    h = await makeHarness(factory);
    const job = await h.submit();
    const grant = await h.claim('A');
    const stale = { factoryId: 'A', leaseEpoch: 0 };
    // assigned → shipped skips stages: invalid for the holder, FENCED for a stale caller.
    expect(
      failure(await h.coord.transition(h.product, job.id, { ...stale, to: 'shipped' })).code,
    ).toBe('FENCED');
    expect(
      failure(
        await h.coord.transition(h.product, job.id, {
          factoryId: 'A',
          leaseEpoch: grant.lease.leaseEpoch,
          to: 'shipped',
        }),
      ).code,
    ).toBe('INVALID_TRANSITION');
  });

  it('moves go in order; skipping a stage is INVALID_TRANSITION and changes nothing', async () => {
    h = await makeHarness(factory);
    const job = await h.submit();
    const grant = await h.claim('A');
    const who = { factoryId: 'A', leaseEpoch: grant.lease.leaseEpoch };
    for (const to of ['review', 'testing', 'shipped'] as const) {
      const before = await h.dump(job.id);
      expect(failure(await h.coord.transition(h.product, job.id, { ...who, to })).code).toBe(
        'INVALID_TRANSITION',
      );
      expect(await h.dump(job.id)).toEqual(before);
    }
    await h.advance(
      grant,
      'building',
      'review',
      'building',
      'review',
      'testing',
      'building',
      'review',
      'testing',
    );
    // A progress report riding on an invalid move is not applied either.
    const before = await h.dump(job.id);
    const r = await h.coord.transition(h.product, job.id, {
      ...who,
      to: 'review',
      checkpoint: { wipCommit: 'x' },
    });
    expect(failure(r).code).toBe('INVALID_TRANSITION');
    expect(await h.dump(job.id)).toEqual(before);
    const shipped = await h.advance(grant, 'shipped');
    expect(shipped.stage).toBe('shipped');
    expect(shipped.holderFactoryId).toBeNull();
  });

  it('the Kleppmann scenario: a paused holder’s late writes are all rejected, the new holder’s succeed', async () => {
    h = await makeHarness(factory, { leaseMs: 10_000 });
    const job = await h.submit();
    const a = await h.claim('A');
    await h.advance(a, 'building');
    must(
      await h.coord.recordProgress(h.product, job.id, {
        factoryId: 'A',
        leaseEpoch: a.lease.leaseEpoch,
        checkpoint: { wipCommit: 'a1' },
      }),
    );
    // A pauses (GC, network partition) past its lease; the reaper requeues; B claims.
    h.clock.advance(10_001);
    expect(await h.coord.reapExpiredLeases()).toBe(1);
    const b = await h.claim('B');
    expect(b.job.id).toBe(job.id);
    expect(b.lease.leaseEpoch).toBeGreaterThan(a.lease.leaseEpoch);
    expect(b.job.checkpoint).toEqual({ wipCommit: 'a1' });
    const before = await h.dump(job.id);
    // A wakes up and carries on as if nothing happened.
    for (const call of Object.values(WORKER_CALLS)) {
      const r = (await call(h, a, { factoryId: 'A', leaseEpoch: a.lease.leaseEpoch })) as never;
      expect(failure(r).code).toBe('FENCED');
    }
    expect(
      failure(
        await h.coord.transition(h.product, job.id, {
          factoryId: 'A',
          leaseEpoch: a.lease.leaseEpoch,
          to: 'review',
        }),
      ).code,
    ).toBe('FENCED');
    expect(await h.dump(job.id)).toEqual(before);
    // B works normally.
    const shipped = await h.advance(b, 'building', 'review', 'testing', 'shipped');
    expect(shipped.stage).toBe('shipped');
    const runs = must(await h.coord.listRuns(h.product, job.id)).items;
    expect(runs.map((r) => [r.attempt, r.factoryId, r.exit])).toEqual([
      [1, 'A', 'lease_expired'],
      [2, 'B', 'shipped'],
    ]);
  });

  it('cancel fences the holder out', async () => {
    h = await makeHarness(factory);
    const job = await h.submit();
    const grant = await h.claim('A');
    const cancelled = must(await h.coord.cancel(h.product, job.id, 'no longer needed'));
    expect(cancelled.stage).toBe('dead_letter');
    expect(cancelled.deadReason).toBe('cancelled');
    expect(cancelled.leaseEpoch).toBeGreaterThan(grant.lease.leaseEpoch);
    expect(
      failure(
        await h.coord.renewLease(h.product, job.id, {
          factoryId: 'A',
          leaseEpoch: grant.lease.leaseEpoch,
        }),
      ).code,
    ).toBe('FENCED');
    const runs = must(await h.coord.listRuns(h.product, job.id)).items;
    expect(runs[0]?.exit).toBe('cancelled');
  });

  it('a job of another product is NOT_FOUND for every call', async () => {
    h = await makeHarness(factory);
    const job = await h.submit();
    const grant = await h.claim('A');
    const who = { factoryId: 'A', leaseEpoch: grant.lease.leaseEpoch };
    const p = 'another-product';
    const c = h.coord;
    for (const r of [
      await c.getJob(p, job.id),
      await c.transition(p, job.id, { ...who, to: 'building' }),
      await c.renewLease(p, job.id, who),
      await c.releaseLease(p, job.id, who),
      await c.recordProgress(p, job.id, who),
      await c.listRuns(p, job.id),
      await c.listEvents(p, job.id),
      await c.requeue(p, job.id),
      await c.cancel(p, job.id),
    ] as Result<unknown>[]) {
      expect(failure(r).code).toBe('NOT_FOUND');
    }
  });

  it('renew extends the lease; release returns the job to the queue with its checkpoint', async () => {
    h = await makeHarness(factory, { leaseMs: 10_000 });
    const job = await h.submit();
    const grant = await h.claim('A');
    const who = { factoryId: 'A', leaseEpoch: grant.lease.leaseEpoch };
    h.clock.advance(8_000);
    const renewed = must(await h.coord.renewLease(h.product, job.id, { ...who, extendMs: 20_000 }));
    expect(renewed).toEqual({
      leaseEpoch: who.leaseEpoch,
      expiresAt: new Date(h.clock.now() + 20_000).toISOString(),
    });
    h.clock.advance(15_000); // past the original expiry, inside the renewed one
    expect(await h.coord.reapExpiredLeases()).toBe(0);
    expect((await h.store.leases.read(job.id, job.id))?.renewals).toBe(1);
    must(
      await h.coord.recordProgress(h.product, job.id, { ...who, checkpoint: { wipBranch: 'b' } }),
    );
    const released = must(
      await h.coord.releaseLease(h.product, job.id, { ...who, reason: 'shutting down' }),
    );
    expect(released).toMatchObject({
      stage: 'queued',
      holderFactoryId: null,
      checkpoint: { wipBranch: 'b' },
    });
    expect(released.leaseEpoch).toBe(who.leaseEpoch + 1);
    expect((await h.store.leases.read(job.id, job.id))?.status).toBe('released');
    const again = await h.claim('B');
    expect(again.job.id).toBe(job.id);
    expect(again.run.attempt).toBe(2);
  });
});

describe.each(STORES.map((s) => [s.name, s] as const))(
  'conditional writes (%s)',
  (_name, factory) => {
    let h: Harness;
    afterEach(async () => h?.close());

    it('every job mutation honours ifMatch: a stale etag is PRECONDITION_FAILED and changes nothing', async () => {
      h = await makeHarness(factory);
      const job = await h.submit();
      const g = await h.claim('A');
      const stale = (await h.store.jobs.read(h.product, job.id))?._etag ?? '';
      const who = { factoryId: 'A', leaseEpoch: g.lease.leaseEpoch };
      const current = must(await h.coord.renewLease(h.product, job.id, who, { ifMatch: stale }));
      expect(current.leaseEpoch).toBe(who.leaseEpoch); // matched: applied
      const before = await h.dump(job.id);
      const c = h.coord;
      for (const r of [
        await c.transition(h.product, job.id, { ...who, to: 'building' }, { ifMatch: stale }),
        await c.renewLease(h.product, job.id, who, { ifMatch: stale }),
        await c.releaseLease(h.product, job.id, who, { ifMatch: stale }),
        await c.recordProgress(
          h.product,
          job.id,
          { ...who, checkpoint: { wipCommit: 'x' } },
          { ifMatch: stale },
        ),
        await c.cancel(h.product, job.id, null, 'admin', { ifMatch: stale }),
      ] as Result<unknown>[]) {
        expect(failure(r).code).toBe('PRECONDITION_FAILED');
      }
      expect(await h.dump(job.id)).toEqual(before);
    });
  },
);
