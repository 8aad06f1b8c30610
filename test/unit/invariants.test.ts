import { afterEach, describe, expect, it } from 'vitest';
import type { Stored } from '../../runtime/document-store.port.js';
import type { JobDoc } from '../../runtime/types.js';
import { type Harness, makeHarness } from '../support/harness.js';
import { storeViolations } from '../support/invariants.js';
import { STORES } from '../support/stores.js';

// The checker guards the crash test and the simulator: it must see what it claims to.
describe('store invariants checker', () => {
  let h: Harness;
  afterEach(async () => h?.close());

  const scenario = async () => {
    h = await makeHarness(STORES[0] as (typeof STORES)[number]);
    const job = await h.submit();
    const g = await h.claim('A');
    await h.advance(g, 'building');
    expect(await storeViolations(h.store)).toEqual([]);
    return (await h.store.jobs.read(h.product, job.id)) as Stored<JobDoc>;
  };
  const tamper = async (job: Stored<JobDoc>, change: Partial<JobDoc>) => {
    const { _etag, ...doc } = job;
    await h.store.jobs.replace({ ...doc, ...change }, _etag);
  };

  it('sees a stage that its events do not explain', async () => {
    const job = await scenario();
    await tamper(job, { stage: 'review' });
    expect((await storeViolations(h.store)).join('\n')).toMatch(/last event .* says building/);
  });

  it('sees a gap in the event stream', async () => {
    const job = await scenario();
    await h.store.events.delete(job.id, `${job.id}.e0000000002`);
    expect((await storeViolations(h.store)).join('\n')).toMatch(/without gaps/);
  });

  it('sees a lease that disagrees with the job', async () => {
    const job = await scenario();
    const lease = await h.store.leases.read(job.id, job.id);
    if (!lease) throw new Error('no lease');
    const { _etag, ...doc } = lease;
    await h.store.leases.replace({ ...doc, holderFactoryId: 'B' }, _etag);
    expect((await storeViolations(h.store)).join('\n')).toMatch(/lease says held B/);
  });

  it('sees a missing or extra open run', async () => {
    const job = await scenario();
    await h.store.runs.delete(job.id, `${job.id}.r1`);
    expect((await storeViolations(h.store)).join('\n')).toMatch(/attempt 1 has no run/);
  });
});
