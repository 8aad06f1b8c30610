import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../../runtime/coordinator.js';
import { JobDraft } from '../../runtime/job-draft.js';
import type { JobDoc } from '../../runtime/types.js';
import { failure, type Harness, makeHarness, must } from '../support/harness.js';
import { storeViolations } from '../support/invariants.js';
import { STORES } from '../support/stores.js';

describe.each(STORES.map((s) => [s.name, s] as const))('claim (%s)', (_name, factory) => {
  let h: Harness;
  afterEach(async () => h?.close());

  it('hands out the highest priority first, then the oldest submission', async () => {
    h = await makeHarness(factory);
    const low = await h.submit({ priority: 'low' });
    const med1 = await h.submit({ priority: 'medium' });
    const crit = await h.submit({ priority: 'critical' });
    const med2 = await h.submit({ priority: 'medium' });
    const high = await h.submit({ priority: 'high' });
    const order: string[] = [];
    for (let i = 0; i < 5; i++) order.push((await h.claim(`f${i}`)).job.id);
    expect(order).toEqual([crit.id, high.id, med1.id, med2.id, low.id]);
    expect(must(await h.coord.claimNextJob(h.product, { factoryId: 'f9' }))).toBeNull();
  });

  it('breaks ties in time by submission sequence, never by chance', async () => {
    h = await makeHarness(factory);
    // The simulated clock does not move: every job has the same createdAt.
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push((await h.submit()).id);
    const claimed: string[] = [];
    for (let i = 0; i < 30; i++) claimed.push((await h.claim('f')).job.id);
    expect(claimed).toEqual(ids);
  });

  it('with a claim spread of k, picks among the k oldest of the best priority only', async () => {
    // A random source that walks through the pool: 0, 1/3, 2/3, 0...
    let n = 0;
    h = await makeHarness(factory, { claimSpread: 3, random: () => (n++ % 3) / 3 });
    const highs: string[] = [];
    for (let i = 0; i < 5; i++) highs.push((await h.submit({ priority: 'high' })).id);
    const low = await h.submit({ priority: 'low' });
    const claimed: string[] = [];
    for (let i = 0; i < 5; i++) {
      const queued = highs.filter((id) => !claimed.includes(id));
      const got = (await h.claim(`f${i}`)).job.id;
      // Only the three oldest still queued of the best priority are eligible.
      expect(queued.slice(0, 3)).toContain(got);
      claimed.push(got);
    }
    // The spread reordered them (the walk picks the 2nd and 3rd too), and took them all.
    expect(claimed).not.toEqual(highs);
    expect([...claimed].sort()).toEqual([...highs].sort());
    // Never a lower priority while a higher one waits: the low job comes last.
    expect((await h.claim('f9')).job.id).toBe(low.id);
  });

  it('refuses a claim spread that is not a whole number from 1', async () => {
    const store = await factory.open();
    try {
      for (const claimSpread of [0, 1.5, -1, 1000]) {
        expect(() => new Coordinator({ store, claimSpread })).toThrow(/claimSpread/);
      }
    } finally {
      await store.close();
    }
  });

  it('matches capabilities as a subset of the factory’s', async () => {
    h = await makeHarness(factory);
    const gpu = await h.submit({ capabilities: ['gpu', 'node'], priority: 'critical' });
    const plain = await h.submit({ capabilities: [] });
    const node = await h.submit({ capabilities: ['node'] });
    expect((await h.claim('cpu', ['node'])).job.id).toBe(plain.id);
    expect((await h.claim('cpu2', ['node'])).job.id).toBe(node.id);
    expect(
      must(await h.coord.claimNextJob(h.product, { factoryId: 'cpu3', capabilities: ['node'] })),
    ).toBeNull();
    expect((await h.claim('big', ['node', 'gpu', 'docker'])).job.id).toBe(gpu.id);
  });

  it('claims only queued jobs of its own product', async () => {
    h = await makeHarness(factory);
    await h.submit();
    const other = await makeHarness({ name: 'shared', open: async () => h.store });
    expect(must(await other.coord.claimNextJob(other.product, { factoryId: 'f' }))).toBeNull();
    await h.claim('f');
    expect(must(await h.coord.claimNextJob(h.product, { factoryId: 'g' }))).toBeNull();
  });

  it('moves the job to assigned with epoch + 1, holder, expiry, and opens a run', async () => {
    h = await makeHarness(factory, { leaseMs: 30_000 });
    const job = await h.submit();
    const grant = await h.claim('f1');
    expect(grant.job.id).toBe(job.id);
    expect(grant.job.stage).toBe('assigned');
    expect(grant.lease.leaseEpoch).toBe(1);
    expect(grant.job.holderFactoryId).toBe('f1');
    expect(grant.lease.expiresAt).toBe(new Date(h.clock.now() + 30_000).toISOString());
    expect(grant.run.attempt).toBe(1);
    const runs = must(await h.coord.listRuns(h.product, job.id)).items;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      id: grant.run.id,
      attempt: 1,
      factoryId: 'f1',
      leaseEpoch: 1,
      endedAt: null,
    });
    const lease = await h.store.leases.read(job.id, job.id);
    expect(lease).toMatchObject({
      holderFactoryId: 'f1',
      leaseEpoch: 1,
      status: 'held',
      renewals: 0,
    });
    const events = await h.events(job.id);
    expect(events.map((e) => e.type)).toEqual(['submitted', 'claimed']);
    expect(events[1]?.data).toMatchObject({
      from: 'queued',
      to: 'assigned',
      factoryId: 'f1',
      attempt: 1,
      leaseEpoch: 1,
    });
  });

  it('skips jobs whose notBefore has not passed', async () => {
    h = await makeHarness(factory);
    const job = await h.submit({ retry: { max: 2, backoff: 'fixed', delayMs: 10_000 } });
    const grant = await h.claim('f');
    await h.advance(grant, 'failed');
    expect((await h.job(job.id)).stage).toBe('failed');
    expect(must(await h.coord.claimNextJob(h.product, { factoryId: 'g' }))).toBeNull();
  });

  it('two claims computed on the same job version: exactly one write wins (etag)', async () => {
    h = await makeHarness(factory);
    const job = await h.submit();
    const version = await h.store.jobs.read(h.product, job.id);
    if (!version) throw new Error('missing');
    const now = h.clock.now();
    const drafts = ['A', 'B'].map((f) => {
      const d = new JobDraft(version, now, f);
      expect(d.send({ type: 'CLAIM', factoryId: f, now, expiresAt: now + 60_000 })).toBeNull();
      return d.finalize();
    });
    const results = await Promise.allSettled(
      drafts.map((d) => h.store.jobs.replace(d, version._etag)),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected');
    expect(lost?.status === 'rejected' && (lost.reason as { code: string }).code).toBe(
      'PRECONDITION_FAILED',
    );
    const stored = (await h.store.jobs.read(h.product, job.id)) as JobDoc;
    expect(stored.leaseEpoch).toBe(1);
    expect(['A', 'B']).toContain(stored.holderFactoryId);
  });

  it('50 concurrent claimers over 200 jobs: every job handed out once, none twice', async () => {
    h = await makeHarness(factory);
    const ids = new Set<string>();
    for (let i = 0; i < 200; i++)
      ids.add((await h.submit({ priority: (['low', 'medium', 'high'] as const)[i % 3] })).id);
    // Five coordinators on one store stand in for five processes: etags decide between them.
    const coords = [
      h.coord,
      ...Array.from({ length: 4 }, () => new Coordinator({ store: h.store, clock: h.clock })),
    ];
    const handedOut: Array<{ job: string; epoch: number; factory: string }> = [];
    await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const coord = coords[i % coords.length] as Coordinator;
        for (;;) {
          const grant = must(await coord.claimNextJob(h.product, { factoryId: `f${i}` }));
          if (!grant) return;
          handedOut.push({ job: grant.job.id, epoch: grant.lease.leaseEpoch, factory: `f${i}` });
        }
      }),
    );
    expect(handedOut).toHaveLength(200);
    expect(await storeViolations(h.store)).toEqual([]);
    expect(new Set(handedOut.map((x) => x.job))).toEqual(ids);
    for (const id of ids) {
      const job = await h.job(id);
      const mine = handedOut.find((x) => x.job === id);
      expect(job.stage).toBe('assigned');
      expect(job.leaseEpoch).toBe(1);
      expect(job.holderFactoryId).toBe(mine?.factory);
      const runs = must(await h.coord.listRuns(h.product, id)).items;
      expect(runs).toHaveLength(1);
    }
  });

  it('rejects a malformed claim body', async () => {
    h = await makeHarness(factory);
    expect(failure(await h.coord.claimNextJob(h.product, { factoryId: '' })).code).toBe(
      'VALIDATION',
    );
    expect(
      failure(await h.coord.claimNextJob(h.product, { factoryId: 'f', waitMs: 99_999 })).code,
    ).toBe('VALIDATION');
  });
});

describe.each(STORES.map((s) => [s.name, s] as const))('lookups (%s)', (_name, factory) => {
  let h: Harness;
  afterEach(async () => h?.close());

  it('finds a job by idempotency key, only in its own product', async () => {
    h = await makeHarness(factory);
    const job = await h.submit({ idempotencyKey: 'issue-42' });
    expect(must(await h.coord.findByIdempotencyKey(h.product, 'issue-42')).id).toBe(job.id);
    expect(failure(await h.coord.findByIdempotencyKey(h.product, 'issue-43')).code).toBe(
      'NOT_FOUND',
    );
    expect(failure(await h.coord.findByIdempotencyKey('other', 'issue-42')).code).toBe('NOT_FOUND');
  });

  it('lists jobs newest first, by stage, page by page', async () => {
    h = await makeHarness(factory);
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await h.submit()).id);
    await h.claim('f'); // the oldest becomes assigned
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: { id: string }[]; nextCursor: string | null } = must(
        await h.coord.listJobs(h.product, { stage: 'queued', limit: 2, cursor }),
      );
      seen.push(...page.items.map((j) => j.id));
      cursor = page.nextCursor;
    } while (cursor !== null);
    expect(seen).toEqual(ids.slice(1).reverse());
    const assigned = must(await h.coord.listJobs(h.product, { stage: 'assigned' })).items;
    expect(assigned.map((j) => j.id)).toEqual([ids[0]]);
    expect(failure(await h.coord.listJobs(h.product, { cursor: 'garbage!' })).code).toBe(
      'VALIDATION',
    );
  });

  it('records artifact pointers with the epoch that wrote them', async () => {
    h = await makeHarness(factory, { leaseMs: 5_000 });
    const job = await h.submit();
    const a = await h.claim('A');
    must(
      await h.coord.recordProgress(h.product, job.id, {
        factoryId: 'A',
        leaseEpoch: a.lease.leaseEpoch,
        artifacts: [{ name: 'build.log', uri: 'blob://logs/1', bytes: 10 }],
      }),
    );
    h.clock.advance(5_000);
    await h.coord.reapExpiredLeases();
    const b = await h.claim('B');
    must(
      await h.coord.recordProgress(h.product, job.id, {
        factoryId: 'B',
        leaseEpoch: b.lease.leaseEpoch,
        artifacts: [{ name: 'build.log', uri: 'blob://logs/2' }],
      }),
    );
    const items = must(await h.coord.listArtifacts(h.product, job.id)).items;
    expect(items.map((x) => [x.name, x.uri, x.leaseEpoch, x.factoryId])).toEqual([
      ['build.log', 'blob://logs/1', a.lease.leaseEpoch, 'A'],
      ['build.log', 'blob://logs/2', b.lease.leaseEpoch, 'B'],
    ]);
  });
});
