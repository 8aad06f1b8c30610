/**
 * The server's side of the agent protocol, through `app.inject()`: `ttlMs` beside
 * `expiresAt` on claim and renew (by the coordinator's clock), a FENCED problem that
 * says why and names the current epoch, progress calls deduplicated by their per-run
 * `seq`, and `Retry-After` on every 429 and 503.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { toProblem } from '../../adapters/http/index.js';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { FleetError } from '../../runtime/index.js';
import { buildTestApp, expectProblem, type TestApp } from '../http/support.js';

describe('server side of the agent protocol', () => {
  let t: TestApp;
  afterEach(async () => t?.app.close());

  const submit = async (key: string): Promise<string> => {
    const res = await t.call('POST', '/fleet/jobs', {
      token: 'submitter',
      body: { idempotencyKey: key, bodyMd: 'work' },
    });
    expect(res.statusCode).toBe(201);
    return res.json().id;
  };
  const claim = async (factoryId: string) => {
    const res = await t.call('POST', '/fleet/claim', { token: 'factory', body: { factoryId } });
    expect(res.statusCode).toBe(200);
    return res.json() as {
      job: { id: string };
      lease: { leaseEpoch: number; expiresAt: string; ttlMs: number };
    };
  };

  it('claim and renew answer ttlMs: what is left of the lease by the coordinator’s clock', async () => {
    t = await buildTestApp({ store: createMemoryStore(), leaseMs: 60_000 });
    await submit('a');
    const g = await claim('f1');
    expect(g.lease.ttlMs).toBe(60_000);
    expect(Date.parse(g.lease.expiresAt) - t.clock.now()).toBe(60_000);
    t.clock.advance(25_000);
    const renewed = await t.call('POST', `/fleet/jobs/${g.job.id}/lease/renew`, {
      token: 'factory',
      body: { factoryId: 'f1', leaseEpoch: g.lease.leaseEpoch, extendMs: 30_000 },
    });
    expect(renewed.statusCode).toBe(200);
    expect(renewed.json()).toEqual({
      leaseEpoch: g.lease.leaseEpoch,
      expiresAt: new Date(t.clock.now() + 30_000).toISOString(),
      ttlMs: 30_000,
    });
  });

  it('a FENCED problem says why the epoch ended and which epoch is current', async () => {
    t = await buildTestApp({ store: createMemoryStore(), leaseMs: 1000 });
    const id = await submit('b');
    const a = await claim('A');
    t.clock.advance(5000);
    expect(await t.coordinator.reapExpiredLeases()).toBe(1);
    const b = await claim('B');
    const me = { factoryId: 'A', leaseEpoch: a.lease.leaseEpoch };
    for (const [method, url, body] of [
      ['POST', `/fleet/jobs/${id}/lease/renew`, me],
      ['PATCH', `/fleet/jobs/${id}`, { ...me, to: 'building' }],
      ['POST', `/fleet/jobs/${id}/progress`, { ...me, seq: 1 }],
      ['POST', `/fleet/jobs/${id}/lease/release`, me],
    ] as const) {
      const res = await t.call(method, url, { token: 'factory', body });
      const problem = expectProblem(res, 'FENCED');
      expect(problem).toMatchObject({ reason: 'reaped', leaseEpoch: b.lease.leaseEpoch });
      expect(problem.detail).toMatch(/reaped/);
    }
    // B ships; a retry of B's ship (its answer lost) learns it was applied
    const meB = { factoryId: 'B', leaseEpoch: b.lease.leaseEpoch };
    for (const to of ['building', 'review', 'testing', 'shipped']) {
      const res = await t.call('PATCH', `/fleet/jobs/${id}`, {
        token: 'factory',
        body: { ...meB, to },
      });
      expect(res.statusCode).toBe(200);
    }
    const again = await t.call('PATCH', `/fleet/jobs/${id}`, {
      token: 'factory',
      body: { ...meB, to: 'shipped' },
    });
    expect(expectProblem(again, 'FENCED')).toMatchObject({
      reason: 'shipped',
      leaseEpoch: b.lease.leaseEpoch + 1,
    });
    // a factory that never held the current epoch
    const stranger = await t.call('POST', `/fleet/jobs/${id}/lease/renew`, {
      token: 'factory',
      body: { factoryId: 'C', leaseEpoch: b.lease.leaseEpoch + 1 },
    });
    expect(expectProblem(stranger, 'FENCED').reason).toBe('not_holder');
  });

  it('progress with seq is applied once: a retry answers 200 with the job unchanged', async () => {
    t = await buildTestApp({ store: createMemoryStore() });
    const id = await submit('c');
    const g = await claim('A');
    const body = { factoryId: 'A', leaseEpoch: g.lease.leaseEpoch, seq: 1, insights: { turns: 2 } };
    const first = await t.call('POST', `/fleet/jobs/${id}/progress`, { token: 'factory', body });
    expect(first.statusCode).toBe(200);
    const retry = await t.call('POST', `/fleet/jobs/${id}/progress`, { token: 'factory', body });
    expect(retry.statusCode).toBe(200);
    expect(retry.headers.etag).toBe(first.headers.etag);
    expect(retry.json().usage.turns).toBe(2);
  });

  it('429 and 503 answers carry Retry-After in whole seconds', () => {
    const throttled = toProblem(
      new FleetError('RATE_LIMITED', 'slow down', { extra: { retryAfterMs: 2500 } }),
    );
    expect(throttled.problem.status).toBe(429);
    expect(throttled.headers['retry-after']).toBe('3');
    expect(toProblem(new FleetError('RATE_LIMITED', 'slow down')).headers['retry-after']).toBe('1');
    const down = toProblem(new FleetError('STORE_UNAVAILABLE', 'gone'));
    expect(down.problem.status).toBe(503);
    expect(down.headers['retry-after']).toBe('1');
    expect(toProblem({ statusCode: 429, message: 'x' }).headers['retry-after']).toBe('1');
    expect(toProblem(new FleetError('FENCED', 'no')).headers['retry-after']).toBeUndefined();
  });
});
