/**
 * Issue 14: rate limits per caller (`rateLimit` plugin option, `FLEET_RATE_LIMIT`).
 * Over the limit: `429 RATE_LIMITED` with `Retry-After` and a problem document; another
 * caller is unaffected; a long-poll claim that parks and re-checks many times counts
 * once; requests without valid credentials are not counted; off by default. The
 * windows are an hour long, so no window ends during a test, however slow the machine.
 */
import { EventEmitter, once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../adapters/http/config.js';
import { parseRateLimit } from '../../adapters/http/index.js';
import { buildServer, type FleetServer } from '../../adapters/http/server.js';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import {
  buildTestApp,
  closeTestApp,
  expectProblem,
  SpyMetrics,
  submitJob,
  type TestApp,
} from './support.js';

const HOUR = 3_600_000;

let t: TestApp | undefined;
let server: FleetServer | undefined;
afterEach(async () => {
  if (t) await closeTestApp(t);
  t = undefined;
  await server?.close();
  server = undefined;
});

describe('rate limits per caller', () => {
  it('over the limit: 429 RATE_LIMITED with Retry-After and a problem document; rate headers on every answer', async () => {
    t = await buildTestApp({ store: createMemoryStore(), rateLimit: { max: 3, windowMs: HOUR } });
    const list = () => t!.call('GET', '/fleet/jobs', { token: 'submitter' });
    for (let i = 0; i < 3; i++) {
      const ok = await list();
      expect(ok.statusCode).toBe(200);
      expect(ok.headers['x-ratelimit-limit']).toBe('3');
      expect(ok.headers['x-ratelimit-remaining']).toBe(String(2 - i));
    }
    const refused = await list();
    const problem = expectProblem(refused, 'RATE_LIMITED');
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    expect(problem).toMatchObject({ limit: 3, windowSeconds: 3600, retryAfterSeconds: retryAfter });
    expect(problem.detail).toMatch(/may make 3 requests per hour; retry after \d+ s/);
    // Every route counts towards the same budget: a mutating one is refused too, before
    // its body is read, and changes nothing.
    const submit = await t.call('POST', '/fleet/jobs', {
      token: 'submitter',
      body: { idempotencyKey: 'late', bodyMd: 'x' },
    });
    expectProblem(submit, 'RATE_LIMITED');
    const page = await t.call('GET', '/fleet/jobs', { token: 'admin' });
    expect(page.json().items).toEqual([]);
  });

  it('another caller is not affected: another token of the product, or of another product', async () => {
    t = await buildTestApp({ store: createMemoryStore(), rateLimit: { max: 2, windowMs: HOUR } });
    for (let i = 0; i < 2; i++) {
      expect((await t.call('GET', '/fleet/jobs', { token: 'submitter' })).statusCode).toBe(200);
    }
    expectProblem(await t.call('GET', '/fleet/jobs', { token: 'submitter' }), 'RATE_LIMITED');
    for (const token of ['admin', 'otherSubmitter'] as const) {
      expect((await t.call('GET', '/fleet/jobs', { token })).statusCode, token).toBe(200);
      expect((await t.call('GET', '/fleet/jobs', { token })).statusCode, token).toBe(200);
    }
  });

  it('a long-poll claim that parks and re-checks many times counts once', async () => {
    const metrics = new SpyMetrics();
    t = await buildTestApp({
      store: createMemoryStore(),
      metrics,
      claimRecheckMs: 10,
      rateLimit: { max: 3, windowMs: HOUR },
    });
    // Count the claim attempts the one request makes while it waits.
    const attempts = new EventEmitter();
    let tries = 0;
    const claimNextJob = t.coordinator.claimNextJob.bind(t.coordinator);
    t.coordinator.claimNextJob = (...args) => {
      tries++;
      attempts.emit('try');
      return claimNextJob(...args);
    };
    const started = metrics.next('started');
    const poll = t.call('POST', '/fleet/claim', {
      token: 'factory',
      body: { factoryId: 'f1', waitMs: 30_000 },
    });
    await started;
    while (tries < 5) await once(attempts, 'try');
    // Another caller's submit wakes it: it gets the job.
    const job = await submitJob(t);
    const claimed = await poll;
    expect(claimed.statusCode).toBe(200);
    expect(claimed.json().job.id).toBe(job.id);
    expect(tries).toBeGreaterThanOrEqual(5);
    // One request spent of three: two more are admitted, the next is not.
    expect(claimed.headers['x-ratelimit-remaining']).toBe('2');
    for (let i = 0; i < 2; i++) {
      expect((await t.call('GET', '/fleet/factories', { token: 'factory' })).statusCode).toBe(200);
    }
    expectProblem(await t.call('GET', '/fleet/factories', { token: 'factory' }), 'RATE_LIMITED');
  });

  it('requests without valid credentials are refused with 401 and not counted against anyone', async () => {
    t = await buildTestApp({ store: createMemoryStore(), rateLimit: { max: 2, windowMs: HOUR } });
    for (let i = 0; i < 5; i++) {
      expectProblem(await t.call('GET', '/fleet/jobs', { token: 'bogus' }), 'UNAUTHENTICATED');
      expectProblem(await t.call('GET', '/fleet/jobs', { token: null }), 'UNAUTHENTICATED');
    }
    expect((await t.call('GET', '/fleet/jobs', { token: 'submitter' })).statusCode).toBe(200);
    expect((await t.call('GET', '/fleet/jobs', { token: 'submitter' })).statusCode).toBe(200);
  });

  it('off by default: no 429 and no rate headers, however many requests', async () => {
    // Past @fastify/rate-limit's own default of 1000 per minute, in case it were on.
    t = await buildTestApp({ store: createMemoryStore() });
    for (let i = 0; i < 1050; i++) {
      const res = await t.call('GET', '/fleet/me', { token: 'submitter' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-ratelimit-limit']).toBeUndefined();
    }
    expect(loadConfig({}).rateLimit).toBeNull();
  });

  it('the standalone server limits each token with FLEET_RATE_LIMIT, and the probes not at all', async () => {
    server = await buildServer(
      loadConfig({
        FLEET_STORE: 'memory',
        FLEET_RATE_LIMIT: '2/hour',
        FLEET_TOKENS: JSON.stringify([
          { token: 'token-a', productId: 'acme', roles: ['submitter'] },
          { token: 'token-b', productId: 'acme', roles: ['submitter'] },
        ]),
      }),
      { logger: false },
    );
    const app = server.app;
    const get = (token: string) =>
      app.inject({
        method: 'GET',
        url: '/fleet/jobs',
        headers: { authorization: `Bearer ${token}` },
      });
    expect((await get('token-a')).statusCode).toBe(200);
    expect((await get('token-a')).statusCode).toBe(200);
    const refused = await get('token-a');
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toMatchObject({ code: 'RATE_LIMITED', limit: 2, windowSeconds: 3600 });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // Two grants without a subject are two callers (each its keyed token id).
    expect((await get('token-b')).statusCode).toBe(200);
    for (let i = 0; i < 5; i++) {
      expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    }
  });

  it('both 429s — the rate and the parked-claims cap — are the same kind of answer', async () => {
    const metrics = new SpyMetrics();
    t = await buildTestApp({
      store: createMemoryStore(),
      metrics,
      maxParkedClaims: 1,
      claimRecheckMs: 5000,
      rateLimit: { max: 3, windowMs: HOUR },
    });
    const started = metrics.next('started');
    const parked = t.call('POST', '/fleet/claim', {
      token: 'factory',
      body: { factoryId: 'f1', waitMs: 30_000 },
    });
    await started;
    const capped = await t.call('POST', '/fleet/claim', {
      token: 'factory',
      body: { factoryId: 'f2', waitMs: 30_000 },
    });
    // The third request of three; the fourth is over the rate.
    expect((await t.call('GET', '/fleet/factories', { token: 'factory' })).statusCode).toBe(200);
    const rated = await t.call('POST', '/fleet/claim', {
      token: 'factory',
      body: { factoryId: 'f3', waitMs: 30_000 },
    });
    for (const res of [capped, rated]) {
      const problem = expectProblem(res, 'RATE_LIMITED');
      expect(Number(res.headers['retry-after'])).toBe(problem.retryAfterSeconds);
      expect(typeof problem.limit).toBe('number');
    }
    expect(expectProblem(capped, 'RATE_LIMITED').detail).toMatch(/long-poll claims waiting/);
    expect(expectProblem(rated, 'RATE_LIMITED').detail).toMatch(/requests per hour/);
    await submitJob(t);
    expect((await parked).statusCode).toBe(200);
  });
});

describe('the OpenAPI document', () => {
  it('lists 429 RATE_LIMITED on every /fleet route', async () => {
    t = await buildTestApp({ store: createMemoryStore() });
    const doc = (await t.call('GET', '/docs/json', { token: null })).json() as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    const routes = Object.entries(doc.paths).filter(([path]) => path.startsWith('/fleet/'));
    expect(routes.length).toBeGreaterThan(15);
    for (const [path, operations] of routes) {
      for (const [method, op] of Object.entries(operations)) {
        expect(op.responses['429'], `${method} ${path}`).toBeDefined();
      }
    }
    expect(JSON.stringify(doc)).toContain('FLEET_RATE_LIMIT');
  });
});

describe('FLEET_RATE_LIMIT', () => {
  it('reads N/unit and N/<count><unit>; off; refuses the rest', () => {
    expect(parseRateLimit('600/min')).toEqual({ max: 600, windowMs: 60_000 });
    expect(parseRateLimit('10/s')).toEqual({ max: 10, windowMs: 1000 });
    expect(parseRateLimit('100/10s')).toEqual({ max: 100, windowMs: 10_000 });
    expect(parseRateLimit(' 5000 / hour ')).toEqual({ max: 5000, windowMs: 3_600_000 });
    expect(parseRateLimit('off')).toBeNull();
    for (const bad of ['600', '0/min', '10/ms', '1/2d', '-1/s', '1.5/s', 'fast', '10/500ms']) {
      expect(parseRateLimit(bad), bad).toHaveProperty('error');
    }
    expect(loadConfig({ FLEET_RATE_LIMIT: '600/min' }).rateLimit).toEqual({
      max: 600,
      windowMs: 60_000,
    });
    expect(() => loadConfig({ FLEET_RATE_LIMIT: 'lots' })).toThrow(
      /FLEET_RATE_LIMIT: must be a rate/,
    );
  });
});
