/**
 * Progress calls carry a per-run sequence: a retried call (seq at or below the last one
 * applied in the run) answers the job unchanged and applies nothing; fencing still
 * comes first. On every store.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { failure, type Harness, makeHarness, must } from '../support/harness.js';
import { STORES } from '../support/stores.js';

describe.each(STORES.map((s) => [s.name, s] as const))('progress seq (%s)', (_name, factory) => {
  let h: Harness;
  afterEach(async () => h?.close());

  it('applies each seq once: a retry is a no-op answered with the job as it is', async () => {
    h = await makeHarness(factory);
    const job = await h.submit();
    const g = await h.claim('A');
    const me = { factoryId: 'A', leaseEpoch: g.lease.leaseEpoch };
    const call = (seq: number, tokensIn: number) =>
      h.coord.recordProgress(h.product, job.id, {
        ...me,
        seq,
        insights: { tokensIn },
        checkpoint: { wipCommit: `c${seq}` },
      });
    const first = must(await call(1, 100));
    expect(first.usage.tokensIn).toBe(100);
    expect(first.run?.progressSeq).toBe(1);
    const before = await h.dump(job.id);
    // the same call again (its answer was lost): nothing changes, the job comes back
    const retry = must(await call(1, 100));
    expect(retry.usage.tokensIn).toBe(100);
    expect(retry._etag).toBe(first._etag);
    expect(await h.dump(job.id)).toEqual(before);
    must(await call(2, 50));
    // an older call arriving late is not applied either
    must(await call(1, 100));
    const after = await h.job(job.id);
    expect(after.usage.tokensIn).toBe(150);
    expect(after.checkpoint?.wipCommit).toBe('c2');
    const recorded = (await h.events(job.id)).filter((e) => e.type === 'insights_recorded');
    expect(recorded).toHaveLength(2);
  });

  it('the sequence is per run: a new claim starts again at 1; calls without seq always apply', async () => {
    h = await makeHarness(factory);
    const job = await h.submit();
    const g1 = await h.claim('A');
    const me1 = { factoryId: 'A', leaseEpoch: g1.lease.leaseEpoch };
    must(
      await h.coord.recordProgress(h.product, job.id, { ...me1, seq: 5, insights: { turns: 1 } }),
    );
    must(await h.coord.recordProgress(h.product, job.id, { ...me1, insights: { turns: 1 } }));
    must(await h.coord.releaseLease(h.product, job.id, me1));
    const g2 = await h.claim('B');
    const me2 = { factoryId: 'B', leaseEpoch: g2.lease.leaseEpoch };
    const j = must(
      await h.coord.recordProgress(h.product, job.id, { ...me2, seq: 1, insights: { turns: 1 } }),
    );
    expect(j.usage.turns).toBe(3);
    expect(j.run?.progressSeq).toBe(1);
  });

  it('fencing comes first: a stale caller with an old seq is FENCED, not answered 200', async () => {
    h = await makeHarness(factory);
    const job = await h.submit();
    const g = await h.claim('A');
    const me = { factoryId: 'A', leaseEpoch: g.lease.leaseEpoch };
    must(
      await h.coord.recordProgress(h.product, job.id, { ...me, seq: 3, insights: { turns: 1 } }),
    );
    must(await h.coord.releaseLease(h.product, job.id, me));
    const r = await h.coord.recordProgress(h.product, job.id, { ...me, seq: 2 });
    expect(failure(r).code).toBe('FENCED');
    const wrong = await h.coord.recordProgress(h.product, job.id, {
      factoryId: 'B',
      leaseEpoch: g.lease.leaseEpoch,
      seq: 1,
    });
    expect(failure(wrong).code).toBe('FENCED');
  });

  it('rejects a seq that is not a positive whole number', async () => {
    h = await makeHarness(factory);
    const job = await h.submit();
    const g = await h.claim('A');
    const r = await h.coord.recordProgress(h.product, job.id, {
      factoryId: 'A',
      leaseEpoch: g.lease.leaseEpoch,
      seq: 0,
    });
    expect(failure(r).code).toBe('VALIDATION');
  });
});
