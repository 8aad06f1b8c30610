import { afterEach, describe, expect, it } from 'vitest';
import { backoffDelay } from '../../runtime/retry-policy.js';
import { failure, type Harness, makeHarness, must } from '../support/harness.js';
import { STORES } from '../support/stores.js';

describe.each(STORES.map((s) => [s.name, s] as const))('reaper (%s)', (_name, factory) => {
  let h: Harness;
  afterEach(async () => h?.close());

  it('reaps only stale leases: fresh ones are left alone', async () => {
    h = await makeHarness(factory, { leaseMs: 10_000 });
    const stale = [await h.submit(), await h.submit()];
    const staleGrants = [await h.claim('old1'), await h.claim('old2')];
    h.clock.advance(6_000);
    const fresh = [await h.submit(), await h.submit()];
    const freshGrants = [await h.claim('new1'), await h.claim('new2')];
    h.clock.advance(5_000); // stale leases expired 1 s ago; fresh ones have 5 s left
    expect(await h.coord.reapExpiredLeases()).toBe(2);
    for (const [i, j] of stale.entries()) {
      const job = await h.job(j.id);
      expect(job.stage).toBe('queued');
      expect(job.leaseEpoch).toBe((staleGrants[i]?.lease.leaseEpoch ?? 0) + 1);
      expect(job.holderFactoryId).toBeNull();
      expect((await h.store.leases.read(j.id, j.id))?.status).toBe('expired');
    }
    for (const [i, j] of fresh.entries()) {
      const job = await h.job(j.id);
      expect(job.stage).toBe('assigned');
      expect(job.holderFactoryId).toBe(`new${i + 1}`);
      expect(job.leaseEpoch).toBe(freshGrants[i]?.lease.leaseEpoch);
    }
  });

  it('is idempotent: reaping twice equals reaping once', async () => {
    h = await makeHarness(factory, { leaseMs: 10_000 });
    const job = await h.submit();
    await h.claim('A');
    h.clock.advance(10_000); // expiresAt <= now counts as expired
    expect(await h.coord.reapExpiredLeases()).toBe(1);
    const once = await h.dump(job.id);
    expect(await h.coord.reapExpiredLeases()).toBe(0);
    expect(await h.dump(job.id)).toEqual(once);
  });

  it('keeps the checkpoint so the next agent resumes, and closes the run as lease_expired', async () => {
    h = await makeHarness(factory, { leaseMs: 10_000 });
    const job = await h.submit();
    const a = await h.claim('A');
    await h.advance(a, 'building');
    const checkpoint = { wipBranch: 'fleet/wip', wipBase: 'main', wipCommit: 'c0ffee' };
    must(
      await h.coord.recordProgress(h.product, job.id, {
        factoryId: 'A',
        leaseEpoch: a.lease.leaseEpoch,
        checkpoint,
      }),
    );
    h.clock.advance(20_000);
    await h.coord.reapExpiredLeases();
    const b = await h.claim('B');
    expect(b.job.checkpoint).toEqual(checkpoint);
    const runs = must(await h.coord.listRuns(h.product, job.id)).items;
    expect(runs[0]).toMatchObject({ attempt: 1, exit: 'lease_expired', factoryId: 'A' });
    expect(runs[0]?.endedAt).not.toBeNull();
    const types = (await h.events(job.id)).map((e) => e.type);
    expect(types).toEqual([
      'submitted',
      'claimed',
      'stage_changed',
      'checkpoint_saved',
      'lease_expired',
      'claimed',
    ]);
  });

  it('sends a job back to blocked when its soft deps are no longer met', async () => {
    h = await makeHarness(factory, { leaseMs: 10_000 });
    const dep = await h.submit({ priority: 'critical' });
    const child = await h.submit({ deps: [dep.id], depsMode: 'soft' });
    const d = await h.claim('D');
    await h.advance(d, 'building', 'review', 'testing');
    expect((await h.job(child.id)).stage).toBe('queued');
    const c = await h.claim('C');
    expect(c.job.id).toBe(child.id);
    await h.advance(d, 'building'); // the dep goes back from testing: soft deps unmet again
    h.clock.advance(10_000);
    must(
      await h.coord.renewLease(h.product, dep.id, {
        factoryId: 'D',
        leaseEpoch: d.lease.leaseEpoch,
      }),
    );
    expect(await h.coord.reapExpiredLeases()).toBe(1);
    expect((await h.job(child.id)).stage).toBe('blocked');
  });

  it('dead-letters a job whose last allowed attempt lost its lease', async () => {
    h = await makeHarness(factory, { leaseMs: 10_000 });
    const job = await h.submit({ retry: { max: 1 } });
    await h.claim('A');
    h.clock.advance(10_000);
    expect(await h.coord.reapExpiredLeases()).toBe(1);
    expect((await h.job(job.id)).stage).toBe('queued');
    await h.claim('B');
    h.clock.advance(10_000);
    expect(await h.coord.reapExpiredLeases()).toBe(1);
    const dead = await h.job(job.id);
    expect(dead).toMatchObject({ stage: 'dead_letter', deadReason: 'lease_expired', attempt: 2 });
    expect(must(await h.coord.claimNextJob(h.product, { factoryId: 'C' }))).toBeNull();
  });
});

describe.each(STORES.map((s) => [s.name, s] as const))('retries (%s)', (_name, factory) => {
  let h: Harness;
  afterEach(async () => h?.close());

  const fail = (
    h: Harness,
    id: string,
    epoch: number,
    factoryId: string,
    errorClass = 'transient',
  ) =>
    h.coord.transition(h.product, id, {
      factoryId,
      leaseEpoch: epoch,
      to: 'failed',
      error: { class: errorClass, message: 'x' },
    });

  it('waits in failed for the exponential backoff, then the supervisor requeues it', async () => {
    h = await makeHarness(factory);
    const policy = {
      max: 3,
      backoff: 'exponential' as const,
      delayMs: 1_000,
      maxDelayMs: 300_000,
      on: ['transient'],
    };
    const job = await h.submit({ retry: policy });
    const delays: number[] = [];
    for (let n = 1; n <= 3; n++) {
      const g = await h.claim(`f${n}`);
      const failed = must(await fail(h, job.id, g.lease.leaseEpoch, `f${n}`));
      expect(failed.stage).toBe('failed');
      const delay = Date.parse(failed.notBefore ?? '') - h.clock.now();
      delays.push(delay);
      // random() is 0.5 in the harness: the jitter factor is exactly 1.
      expect(delay).toBe(backoffDelay(policy, n, () => 0.5));
      h.clock.advance(delay - 1);
      expect(await h.coord.retryDue()).toBe(0);
      expect(must(await h.coord.claimNextJob(h.product, { factoryId: 'early' }))).toBeNull();
      h.clock.advance(1);
      expect(await h.coord.retryDue()).toBe(1);
      expect((await h.job(job.id)).stage).toBe('queued');
    }
    expect(delays).toEqual([1_000, 2_000, 4_000]);
    // The fourth failure exhausts retry.max = 3.
    const g = await h.claim('last');
    const dead = must(await fail(h, job.id, g.lease.leaseEpoch, 'last'));
    expect(dead).toMatchObject({
      stage: 'dead_letter',
      deadReason: 'retries_exhausted',
      attempt: 4,
    });
    const runs = must(await h.coord.listRuns(h.product, job.id)).items;
    expect(runs.map((r) => r.exit)).toEqual(['failed', 'failed', 'failed', 'failed']);
    expect(runs[3]?.error).toEqual({ class: 'transient', message: 'x' });
  });

  it('jitters: delays spread within ±25% and never exceed maxDelayMs', () => {
    const policy = {
      max: 3,
      backoff: 'exponential' as const,
      delayMs: 1_000,
      maxDelayMs: 5_000,
      on: [],
    };
    expect(backoffDelay(policy, 1, () => 0)).toBe(750);
    expect(backoffDelay(policy, 1, () => 0.999999)).toBe(1_250);
    expect(backoffDelay(policy, 10, () => 0.999999)).toBe(5_000);
    const fixed = { ...policy, backoff: 'fixed' as const };
    expect(backoffDelay(fixed, 7, () => 0)).toBe(750);
  });

  it('a class not in retry.on goes straight to dead_letter', async () => {
    h = await makeHarness(factory);
    const job = await h.submit({ retry: { max: 5, on: ['transient'] } });
    const g = await h.claim('A');
    const dead = must(await fail(h, job.id, g.lease.leaseEpoch, 'A', 'compile_error'));
    expect(dead).toMatchObject({
      stage: 'dead_letter',
      deadReason: 'non_retryable',
      lastError: { class: 'compile_error' },
    });
  });

  it('retry.max = 0 means one attempt only', async () => {
    h = await makeHarness(factory);
    const job = await h.submit({ retry: { max: 0 } });
    const g = await h.claim('A');
    expect(must(await fail(h, job.id, g.lease.leaseEpoch, 'A')).stage).toBe('dead_letter');
  });

  it('admin requeue brings a dead job back with its attempts reset; other stages are INVALID_TRANSITION', async () => {
    h = await makeHarness(factory);
    const job = await h.submit({ retry: { max: 0 } });
    expect(failure(await h.coord.requeue(h.product, job.id)).code).toBe('INVALID_TRANSITION');
    const g = await h.claim('A');
    must(await fail(h, job.id, g.lease.leaseEpoch, 'A'));
    const requeued = must(await h.coord.requeue(h.product, job.id));
    expect(requeued).toMatchObject({
      stage: 'queued',
      failures: 0,
      deadReason: null,
      notBefore: null,
    });
    const again = await h.claim('B');
    expect(again.run.attempt).toBe(2);
    // Its one allowed failure is available again.
    expect(must(await fail(h, job.id, again.lease.leaseEpoch, 'B')).stage).toBe('dead_letter');
  });

  it('the supervisor sweep runs due retries and reaps leases in one pass', async () => {
    h = await makeHarness(factory, { leaseMs: 5_000 });
    const a = await h.submit({ retry: { backoff: 'fixed', delayMs: 1_000 } });
    const b = await h.submit();
    const ga = await h.claim('A');
    await h.claim('B');
    must(await fail(h, a.id, ga.lease.leaseEpoch, 'A'));
    h.clock.advance(5_000);
    const report = await h.coord.sweep();
    expect(report).toMatchObject({ reaped: 1, retried: 1 });
    expect((await h.job(a.id)).stage).toBe('queued');
    expect((await h.job(b.id)).stage).toBe('queued');
  });
});
