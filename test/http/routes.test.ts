/**
 * Every route of API.md (and our additions) on its success path, through
 * `app.inject()`, on every store adapter.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { STORES } from '../support/stores.js';
import { buildTestApp, claimJob, PRODUCT, submitJob, type TestApp } from './support.js';

const INTERNAL_FIELDS = [
  'snapshot',
  'machineVersion',
  'outbox',
  'contentHash',
  'seq',
  'rev',
  'eventSeq',
  'dueAt',
  '_etag',
];

describe.each(STORES)('routes on $name', (factory) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await buildTestApp({ store: await factory.open() });
  });
  afterEach(async () => {
    await t.app.close();
    await t.coordinator.drain();
    await t.store.close();
  });

  it('POST /fleet/jobs: 201 created, 200 existing, 200 superseded, with Fleet-Idempotency', async () => {
    const body = {
      idempotencyKey: 'issue-42',
      bodyMd: '# Fix it',
      priority: 'high',
      capabilities: ['node', 'gpu'],
      budget: { usd: 5, tokens: 2_000_000, wall: 'PT2H' },
      manifestSnapshot: { repo: 'x', nested: { a: 1, b: 2 } },
    };
    const created = await t.call('POST', '/fleet/jobs', { token: 'submitter', body });
    expect(created.statusCode).toBe(201);
    expect(created.headers['fleet-idempotency']).toBe('created');
    const job = created.json();
    expect(created.headers.location).toBe(`/fleet/jobs/${encodeURIComponent(job.id)}`);
    expect(created.headers.etag).toMatch(/^".+"$/);
    expect(job).toMatchObject({
      productId: PRODUCT,
      idempotencyKey: 'issue-42',
      stage: 'queued',
      priority: 'high',
      depsMode: 'hard',
      kind: 'leaf',
      parentId: null,
      attempt: 0,
      leaseEpoch: 0,
      holderFactoryId: null,
      leaseExpiresAt: null,
      notBefore: null,
      version: 1,
      retry: {
        max: 3,
        backoff: 'exponential',
        delayMs: 1000,
        maxDelayMs: 300_000,
        on: ['transient'],
      },
    });
    expect([...job.capabilities].sort()).toEqual(['gpu', 'node']);
    for (const field of INTERNAL_FIELDS) expect(job).not.toHaveProperty(field);

    // Same content, keys in another order: the existing job, nothing new.
    const again = await t.call('POST', '/fleet/jobs', {
      token: 'submitter',
      body: {
        ...body,
        manifestSnapshot: { nested: { b: 2, a: 1 }, repo: 'x' },
        capabilities: ['gpu', 'node'],
      },
    });
    expect(again.statusCode).toBe(200);
    expect(again.headers['fleet-idempotency']).toBe('existing');
    expect(again.json().id).toBe(job.id);
    expect(again.json().version).toBe(1);

    const superseded = await t.call('POST', '/fleet/jobs', {
      token: 'submitter',
      body: { ...body, bodyMd: '# Fix it, properly' },
    });
    expect(superseded.statusCode).toBe(200);
    expect(superseded.headers['fleet-idempotency']).toBe('superseded');
    expect(superseded.json()).toMatchObject({
      id: job.id,
      version: 2,
      bodyMd: '# Fix it, properly',
    });

    const list = await t.call('GET', '/fleet/jobs', { token: 'submitter' });
    expect(list.json().items).toHaveLength(1);
  });

  it('a job with unmet deps starts blocked', async () => {
    const dep = await submitJob(t);
    const blocked = await submitJob(t, { deps: [dep.id] });
    expect(blocked.stage).toBe('blocked');
    expect(blocked.deps).toEqual([dep.id]);
  });

  it('GET /fleet/jobs: newest first, by stage, paged with limit and cursor', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await submitJob(t)).id);
    await claimJob(t); // the oldest becomes assigned
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
      const res = await t.call('GET', `/fleet/jobs?limit=2${query}`, { token: 'factory' });
      expect(res.statusCode).toBe(200);
      const page = res.json() as { items: { id: string }[]; nextCursor: string | null };
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((j) => j.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());

    const queued = (await t.call('GET', '/fleet/jobs?stage=queued', { token: 'submitter' })).json();
    expect(queued.items.map((j: { id: string }) => j.id)).toEqual(ids.slice(1).reverse());
    expect(queued.nextCursor).toBeNull();
    const assigned = (await t.call('GET', '/fleet/jobs?stage=assigned')).json();
    expect(assigned.items.map((j: { id: string }) => j.id)).toEqual([ids[0]]);
    // Default limit (50) and unknown query parameters are ignored on reads.
    const all = await t.call('GET', '/fleet/jobs?foo=bar');
    expect(all.json().items).toHaveLength(5);
  });

  it('GET /fleet/jobs/:id: the job with its ETag; If-None-Match revalidates with 304', async () => {
    const job = await submitJob(t);
    const res = await t.call('GET', `/fleet/jobs/${job.id}`, { token: 'submitter' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(job);
    const etag = res.headers.etag as string;
    expect(etag).toMatch(/^".+"$/);
    const same = await t.call('GET', `/fleet/jobs/${job.id}`, {
      headers: { 'if-none-match': etag },
    });
    expect(same.statusCode).toBe(304);
    expect(same.body).toBe('');
    expect(same.headers.etag).toBe(etag);
    const other = await t.call('GET', `/fleet/jobs/${job.id}`, {
      headers: { 'if-none-match': '"something-else"' },
    });
    expect(other.statusCode).toBe(200);
  });

  it('the worker path: heartbeat, claim, renew, progress, PATCH through shipped; runs, events, artifacts', async () => {
    const hb = await t.call('POST', '/fleet/factories/heartbeat', {
      token: 'factory',
      body: { factoryId: 'f1', capabilities: ['node'], health: 'ok', load: 0.5, seatLimit: 2 },
    });
    expect(hb.statusCode).toBe(200);
    expect(hb.json()).toMatchObject({
      factoryId: 'f1',
      productId: PRODUCT,
      capabilities: ['node'],
      health: 'ok',
      seatLimit: 2,
      stale: false,
    });
    expect(hb.json()).not.toHaveProperty('_etag');
    const factories = (await t.call('GET', '/fleet/factories', { token: 'submitter' })).json();
    expect(factories).toMatchObject({
      items: [{ factoryId: 'f1', stale: false }],
      nextCursor: null,
    });

    const job = await submitJob(t, { capabilities: ['node'] });
    // Capabilities from the last heartbeat.
    const claim = await t.call('POST', '/fleet/claim', {
      token: 'factory',
      body: { factoryId: 'f1' },
    });
    expect(claim.statusCode).toBe(200);
    const grant = claim.json();
    expect(grant.job).toMatchObject({
      id: job.id,
      stage: 'assigned',
      leaseEpoch: 1,
      holderFactoryId: 'f1',
    });
    expect(grant.lease).toEqual({
      leaseEpoch: 1,
      expiresAt: grant.job.leaseExpiresAt,
      ttlMs: 60_000,
    });
    expect(grant.run).toMatchObject({ attempt: 1 });
    for (const field of INTERNAL_FIELDS) expect(grant.job).not.toHaveProperty(field);
    const me = { factoryId: 'f1', leaseEpoch: grant.lease.leaseEpoch };

    t.clock.advance(10_000);
    const renew = await t.call('POST', `/fleet/jobs/${job.id}/lease/renew`, {
      token: 'factory',
      body: { ...me, extendMs: 120_000 },
    });
    expect(renew.statusCode).toBe(200);
    expect(renew.json()).toEqual({
      leaseEpoch: 1,
      expiresAt: new Date(t.clock.now() + 120_000).toISOString(),
      ttlMs: 120_000,
    });

    const progress = await t.call('POST', `/fleet/jobs/${job.id}/progress`, {
      token: 'factory',
      body: {
        ...me,
        checkpoint: { wipBranch: 'wip/42', wipCommit: 'abc' },
        insights: { tokensIn: 100, tokensOut: 50, costUsd: 0.25, turns: 3 },
        artifacts: [{ name: 'log', uri: 'blob://logs/42', contentType: 'text/plain', bytes: 10 }],
      },
    });
    expect(progress.statusCode).toBe(200);
    expect(progress.json()).toMatchObject({
      stage: 'assigned',
      checkpoint: { wipBranch: 'wip/42', wipCommit: 'abc' },
      usage: { tokensIn: 100, tokensOut: 50, costUsd: 0.25, turns: 3 },
    });
    expect(progress.headers.etag).toMatch(/^".+"$/);

    let etag = progress.headers.etag as string;
    for (const to of ['building', 'review', 'testing', 'shipped'] as const) {
      const res = await t.call('PATCH', `/fleet/jobs/${job.id}`, {
        token: 'factory',
        headers: { 'if-match': etag },
        body: { ...me, to, ...(to === 'shipped' ? { result: { pr: 7 } } : {}) },
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().stage).toBe(to);
      expect(res.headers.etag).not.toBe(etag);
      etag = res.headers.etag as string;
    }

    const runs = (await t.call('GET', `/fleet/jobs/${job.id}/runs`, { token: 'submitter' })).json();
    expect(runs.nextCursor).toBeNull();
    expect(runs.items).toHaveLength(1);
    expect(runs.items[0]).toMatchObject({
      jobId: job.id,
      attempt: 1,
      factoryId: 'f1',
      leaseEpoch: 1,
      exit: 'shipped',
      result: { pr: 7 },
      insights: { tokensIn: 100, tokensOut: 50 },
    });
    expect(runs.items[0]).not.toHaveProperty('rev');

    const events = (await t.call('GET', `/fleet/jobs/${job.id}/events`)).json();
    expect(events.items.map((ev: { seq: number }) => ev.seq)).toEqual(
      events.items.map((_: unknown, i: number) => i + 1),
    );
    expect(events.items[0]).toMatchObject({ type: 'submitted', seq: 1, actor: 'sub-1' });
    expect(events.items.map((ev: { type: string }) => ev.type)).toContain('claimed');
    for (const ev of events.items)
      expect(Object.keys(ev)).toEqual(
        expect.arrayContaining(['seq', 'type', 'at', 'actor', 'data']),
      );
    // Paged by seq.
    const first = (await t.call('GET', `/fleet/jobs/${job.id}/events?limit=2`)).json();
    expect(first.items.map((ev: { seq: number }) => ev.seq)).toEqual([1, 2]);
    const rest = (
      await t.call('GET', `/fleet/jobs/${job.id}/events?limit=500&cursor=${first.nextCursor}`)
    ).json();
    expect(rest.items[0].seq).toBe(3);
    expect(rest.items).toHaveLength(events.items.length - 2);

    const artifacts = (await t.call('GET', `/fleet/jobs/${job.id}/artifacts`)).json();
    expect(artifacts).toMatchObject({
      items: [{ name: 'log', uri: 'blob://logs/42', leaseEpoch: 1, factoryId: 'f1' }],
      nextCursor: null,
    });
  });

  it('POST /fleet/claim: 204 when nothing is eligible; highest priority then oldest', async () => {
    const none = await t.call('POST', '/fleet/claim', {
      token: 'factory',
      body: { factoryId: 'f1' },
    });
    expect(none.statusCode).toBe(204);
    expect(none.body).toBe('');
    const low = await submitJob(t, { priority: 'low' });
    const high1 = await submitJob(t, { priority: 'high' });
    const high2 = await submitJob(t, { priority: 'high' });
    const gpu = await submitJob(t, { priority: 'critical', capabilities: ['gpu'] });
    const order = [];
    for (let i = 0; i < 3; i++) order.push((await claimJob(t, `f${i}`)).job.id);
    expect(order).toEqual([high1.id, high2.id, low.id]);
    const withGpu = await t.call('POST', '/fleet/claim', {
      token: 'factory',
      body: { factoryId: 'g', capabilities: ['gpu'] },
    });
    expect(withGpu.json().job.id).toBe(gpu.id);
  });

  it('POST .../lease/release: back to queued with a new epoch, checkpoint kept', async () => {
    const job = await submitJob(t);
    const grant = await claimJob(t);
    await t.call('POST', `/fleet/jobs/${job.id}/progress`, {
      token: 'factory',
      body: { factoryId: 'f1', leaseEpoch: 1, checkpoint: { wipBranch: 'wip/1' } },
    });
    const res = await t.call('POST', `/fleet/jobs/${job.id}/lease/release`, {
      token: 'factory',
      body: { factoryId: 'f1', leaseEpoch: grant.lease.leaseEpoch, reason: 'shutting down' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      stage: 'queued',
      leaseEpoch: 2,
      holderFactoryId: null,
      checkpoint: { wipBranch: 'wip/1' },
    });
  });

  it('PATCH to failed with a retryable error waits in failed with notBefore', async () => {
    const job = await submitJob(t);
    await claimJob(t);
    const res = await t.call('PATCH', `/fleet/jobs/${job.id}`, {
      token: 'factory',
      body: {
        factoryId: 'f1',
        leaseEpoch: 1,
        to: 'failed',
        error: { class: 'transient', message: 'flaky' },
      },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ stage: 'failed', lastError: { class: 'transient' } });
    expect(res.json().notBefore).not.toBeNull();
  });

  it('admin: cancel (optional reason) fences the holder; requeue brings it back', async () => {
    const job = await submitJob(t);
    await claimJob(t);
    const cancelled = await t.call('POST', `/fleet/jobs/${job.id}/cancel`, {
      token: 'admin',
      body: { reason: 'obsolete' },
    });
    expect(cancelled.statusCode).toBe(200);
    expect(cancelled.json()).toMatchObject({
      stage: 'dead_letter',
      deadReason: 'cancelled',
      leaseEpoch: 2,
    });
    const fenced = await t.call('PATCH', `/fleet/jobs/${job.id}`, {
      token: 'factory',
      body: { factoryId: 'f1', leaseEpoch: 1, to: 'building' },
    });
    expect(fenced.statusCode).toBe(409);

    // No body at all, and an empty body with a JSON content type, are both "no body".
    const requeued = await t.call('POST', `/fleet/jobs/${job.id}/requeue`, { token: 'admin' });
    expect(requeued.statusCode, requeued.body).toBe(200);
    expect(requeued.json()).toMatchObject({ stage: 'queued', deadReason: null });
    const other = await submitJob(t);
    const bare = await t.call('POST', `/fleet/jobs/${other.id}/cancel`, {
      token: 'admin',
      payload: '',
      headers: { 'content-type': 'application/json' },
    });
    expect(bare.statusCode, bare.body).toBe(200);
    const events = (await t.call('GET', `/fleet/jobs/${job.id}/events?limit=500`)).json();
    const cancelEvent = events.items.find((ev: { type: string }) => ev.type === 'cancelled');
    expect(cancelEvent).toMatchObject({ actor: 'ops', data: { reason: 'obsolete' } });
  });

  it('service routes: /healthz, /readyz, /metrics without auth', async () => {
    const health = await t.call('GET', '/healthz', { token: null });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toEqual({ status: 'ok' });
    const ready = await t.call('GET', '/readyz', { token: null });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready', store: t.store.kind });
    const metrics = await t.call('GET', '/metrics', { token: null });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  });
});
