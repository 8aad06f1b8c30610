/**
 * Every error code of API.md a route can produce, as an RFC 9457 problem document, and
 * the request-level failures: unknown fields, malformed JSON, an unsupported media
 * type, an oversized body, unknown routes, bad URLs, and unexpected failures (500 with
 * a generic detail, logged with the stack). On every store adapter.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { jobIdFor } from '../../runtime/index.js';
import { STORES } from '../support/stores.js';
import {
  buildTestApp,
  claimJob,
  dumpProduct,
  expectProblem,
  PRODUCT,
  submitJob,
  type TestApp,
} from './support.js';

const BODY_LIMIT = 8 * 1024;

describe.each(STORES)('error codes on $name', (factory) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await buildTestApp({ store: await factory.open(), bodyLimit: BODY_LIMIT });
  });
  afterEach(async () => {
    await t.app.close();
    await t.coordinator.drain();
    await t.store.close();
  });

  describe('VALIDATION (400)', () => {
    it('unknown fields are rejected, at the top level and nested, naming the field', async () => {
      const top = await t.call('POST', '/fleet/jobs', {
        token: 'submitter',
        body: { idempotencyKey: 'k', bodyMd: 'x', productId: 'prod-b' },
      });
      const p = expectProblem(top, 'VALIDATION');
      expect(p.detail).toContain('productId');
      expect(p.errors).toEqual([expect.objectContaining({ in: 'body', path: '' })]);
      const nested = await t.call('POST', '/fleet/jobs', {
        token: 'submitter',
        body: { idempotencyKey: 'k', bodyMd: 'x', retry: { max: 1, tries: 3 } },
      });
      expect(expectProblem(nested, 'VALIDATION').detail).toContain('tries');
      const job = await submitJob(t);
      await claimJob(t);
      for (const [method, url, body] of [
        [
          'PATCH',
          `/fleet/jobs/${job.id}`,
          { factoryId: 'f1', leaseEpoch: 1, to: 'building', x: 1 },
        ],
        ['POST', '/fleet/claim', { factoryId: 'f1', extra: true }],
        ['POST', `/fleet/jobs/${job.id}/lease/renew`, { factoryId: 'f1', leaseEpoch: 1, x: 1 }],
        ['POST', `/fleet/jobs/${job.id}/lease/release`, { factoryId: 'f1', leaseEpoch: 1, x: 1 }],
        ['POST', `/fleet/jobs/${job.id}/progress`, { factoryId: 'f1', leaseEpoch: 1, x: 1 }],
        [
          'POST',
          '/fleet/factories/heartbeat',
          { factoryId: 'f1', capabilities: [], health: 'ok', x: 1 },
        ],
        ['POST', `/fleet/jobs/${job.id}/requeue`, { x: 1 }],
        ['POST', `/fleet/jobs/${job.id}/cancel`, { reason: 'r', x: 1 }],
      ] as const) {
        const res = await t.call(method, url, { token: 'admin', body });
        expectProblem(res, 'VALIDATION');
      }
    });

    it('wrong types and missing fields list every failing path', async () => {
      const res = await t.call('POST', '/fleet/jobs', {
        token: 'submitter',
        body: { bodyMd: 42, priority: 'urgent' },
      });
      const p = expectProblem(res, 'VALIDATION');
      const paths = (p.errors as { path: string }[]).map((e) => e.path).sort();
      expect(paths).toEqual(['bodyMd', 'idempotencyKey', 'priority']);
      expect(p.detail).toMatch(/body\.idempotencyKey/);
      const patch = await t.call('PATCH', '/fleet/jobs/whatever', {
        token: 'factory',
        body: { factoryId: 'f1', leaseEpoch: -1, to: 'shipped-ish' },
      });
      expect(
        (expectProblem(patch, 'VALIDATION').errors as { path: string }[]).map((e) => e.path).sort(),
      ).toEqual(['leaseEpoch', 'to']);
      const wait = await t.call('POST', '/fleet/claim', {
        token: 'factory',
        body: { factoryId: 'f1', waitMs: 30_001 },
      });
      expectProblem(wait, 'VALIDATION');
      const missing = await t.call('POST', '/fleet/jobs', { token: 'submitter' });
      expect(expectProblem(missing, 'VALIDATION').detail).toContain('(body)');
    });

    it('malformed JSON, an unsupported content type, prototype poisoning', async () => {
      const bad = await t.call('POST', '/fleet/jobs', {
        token: 'submitter',
        payload: '{"idempotencyKey": "k", "bodyMd": ',
        headers: { 'content-type': 'application/json' },
      });
      expect(expectProblem(bad, 'VALIDATION').detail).toBe('the body is not valid JSON');
      const text = await t.call('POST', '/fleet/jobs', {
        token: 'submitter',
        payload: 'idempotencyKey=k',
        headers: { 'content-type': 'text/plain' },
      });
      expect(expectProblem(text, 'VALIDATION').detail).toMatch(/Content-Type/);
      const form = await t.call('POST', '/fleet/jobs', {
        token: 'submitter',
        payload: 'idempotencyKey=k&bodyMd=x',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expectProblem(form, 'VALIDATION');
      const proto = await t.call('POST', '/fleet/jobs', {
        token: 'submitter',
        payload:
          '{"idempotencyKey":"k","bodyMd":"x","manifestSnapshot":{"__proto__":{"admin":true}}}',
        headers: { 'content-type': 'application/json' },
      });
      expectProblem(proto, 'VALIDATION');
      expect(await dumpProduct(t.store, PRODUCT)).toEqual({ jobs: [], factories: [] });
    });

    it('queries and params: limit over 500, below 1 or not a number; a bad stage; a foreign cursor', async () => {
      const job = await submitJob(t);
      for (const q of ['limit=501', 'limit=0', 'limit=ten', 'limit=1.5', 'stage=done']) {
        const res = await t.call('GET', `/fleet/jobs?${q}`);
        expect(expectProblem(res, 'VALIDATION').errors).toEqual([
          expect.objectContaining({ in: 'query' }),
        ]);
      }
      for (const url of [
        '/fleet/jobs?cursor=not-a-cursor',
        `/fleet/jobs/${job.id}/runs?cursor=bm9wZQ`,
        `/fleet/jobs/${job.id}/artifacts?cursor=x`,
        `/fleet/jobs/${job.id}/events?cursor=abc`,
        '/fleet/factories?cursor=x',
        `/fleet/jobs/${job.id}/events?limit=600`,
      ]) {
        expectProblem(await t.call('GET', url), 'VALIDATION');
      }
      const longId = await t.call('GET', `/fleet/jobs/${'x'.repeat(250)}`);
      expect(longId.statusCode).toBe(400);
      expect(longId.headers['content-type']).toMatch(/^application\/problem\+json/);
      const badUrl = await t.call('GET', '/fleet/jobs/%E0%A4%A');
      expectProblem(badUrl, 'VALIDATION');
    });
  });

  it('UNAUTHENTICATED (401): no token, an unknown token, a malformed header; before validation', async () => {
    for (const token of [null, 'nope', '']) {
      const res = await t.call('POST', '/fleet/jobs', { token, body: { junk: true } });
      expectProblem(res, 'UNAUTHENTICATED');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
    const basic = await t.call('GET', '/fleet/jobs', {
      token: null,
      headers: { authorization: 'Basic YWRtaW46YWRtaW4=' },
    });
    expectProblem(basic, 'UNAUTHENTICATED');
    // Authentication comes before body parsing: no hint about the body's size or shape.
    const big = await t.call('POST', '/fleet/jobs', {
      token: null,
      payload: 'x'.repeat(BODY_LIMIT * 2),
      headers: { 'content-type': 'application/json' },
    });
    expectProblem(big, 'UNAUTHENTICATED');
  });

  it('FORBIDDEN (403): a known token without the role', async () => {
    const job = await submitJob(t);
    expectProblem(
      await t.call('POST', '/fleet/claim', { token: 'submitter', body: { factoryId: 'f1' } }),
      'FORBIDDEN',
    );
    expectProblem(
      await t.call('POST', `/fleet/jobs/${job.id}/cancel`, { token: 'factory' }),
      'FORBIDDEN',
    );
    expectProblem(await t.call('GET', '/fleet/jobs', { token: 'noRoles' }), 'FORBIDDEN');
  });

  it('NOT_FOUND (404): an unknown job on every job route; unknown routes', async () => {
    for (const [method, url, body] of [
      ['GET', '/fleet/jobs/job_missing', undefined],
      ['PATCH', '/fleet/jobs/job_missing', { factoryId: 'f1', leaseEpoch: 1, to: 'building' }],
      ['POST', '/fleet/jobs/job_missing/lease/renew', { factoryId: 'f1', leaseEpoch: 1 }],
      ['POST', '/fleet/jobs/job_missing/lease/release', { factoryId: 'f1', leaseEpoch: 1 }],
      ['POST', '/fleet/jobs/job_missing/progress', { factoryId: 'f1', leaseEpoch: 1 }],
      ['GET', '/fleet/jobs/job_missing/runs', undefined],
      ['GET', '/fleet/jobs/job_missing/events', undefined],
      ['GET', '/fleet/jobs/job_missing/artifacts', undefined],
      ['POST', '/fleet/jobs/job_missing/requeue', undefined],
      ['POST', '/fleet/jobs/job_missing/cancel', undefined],
    ] as const) {
      expectProblem(await t.call(method, url, { token: 'admin', body }), 'NOT_FOUND');
    }
    const route = await t.call('GET', '/fleet/nothing-here');
    expect(expectProblem(route, 'NOT_FOUND').detail).toBe('no route GET /fleet/nothing-here');
    // A known path with the wrong method: still a 404 (no 405 code in the contract), naming the right ones.
    const wrongMethod = await t.call('DELETE', '/fleet/jobs');
    expect(expectProblem(wrongMethod, 'NOT_FOUND')).toMatchObject({ allow: ['POST', 'GET'] });
    expect(wrongMethod.headers.allow).toBe('POST, GET');
    const getClaim = await t.call('GET', '/fleet/claim');
    expect(expectProblem(getClaim, 'NOT_FOUND').detail).toBe(
      'no route GET /fleet/claim; this path accepts POST',
    );
    expect(expectProblem(await t.call('PUT', '/fleet/jobs/abc/cancel'), 'NOT_FOUND').allow).toEqual(
      ['POST'],
    );
    expectProblem(await t.call('GET', '/not-fleet', { token: null }), 'NOT_FOUND');
  });

  it('FENCED (409): a stale epoch or a foreign factory on every worker call; nothing changes', async () => {
    const job = await submitJob(t);
    await claimJob(t, 'f1');
    const before = await dumpProduct(t.store, PRODUCT);
    const calls = [
      ['PATCH', `/fleet/jobs/${job.id}`, { factoryId: 'f1', leaseEpoch: 0, to: 'building' }],
      // Fencing comes before the lifecycle: an invalid move from a stale caller is FENCED.
      ['PATCH', `/fleet/jobs/${job.id}`, { factoryId: 'f2', leaseEpoch: 1, to: 'shipped' }],
      ['POST', `/fleet/jobs/${job.id}/lease/renew`, { factoryId: 'f2', leaseEpoch: 1 }],
      ['POST', `/fleet/jobs/${job.id}/lease/release`, { factoryId: 'f1', leaseEpoch: 7 }],
      [
        'POST',
        `/fleet/jobs/${job.id}/progress`,
        { factoryId: 'f2', leaseEpoch: 1, insights: { turns: 1 } },
      ],
    ] as const;
    for (const [method, url, body] of calls) {
      expectProblem(await t.call(method, url, { token: 'factory', body }), 'FENCED');
    }
    expect(await dumpProduct(t.store, PRODUCT)).toEqual(before);
    expect(await t.metrics.render()).toMatch(/^fleet_fenced_total 5$/m);
  });

  it('INVALID_TRANSITION (409): a move the lifecycle does not allow; admin moves from the wrong stage', async () => {
    const job = await submitJob(t);
    await claimJob(t, 'f1');
    const before = await dumpProduct(t.store, PRODUCT);
    const skip = await t.call('PATCH', `/fleet/jobs/${job.id}`, {
      token: 'factory',
      body: { factoryId: 'f1', leaseEpoch: 1, to: 'review' },
    });
    expectProblem(skip, 'INVALID_TRANSITION');
    expectProblem(await t.call('POST', `/fleet/jobs/${job.id}/requeue`), 'INVALID_TRANSITION');
    expect(await dumpProduct(t.store, PRODUCT)).toEqual(before);
    await t.call('POST', `/fleet/jobs/${job.id}/cancel`);
    expectProblem(await t.call('POST', `/fleet/jobs/${job.id}/cancel`), 'INVALID_TRANSITION');
  });

  it('IDEMPOTENCY_CONFLICT (409): same key, new content, job past queued', async () => {
    const body = { idempotencyKey: 'once', bodyMd: 'v1' };
    await t.call('POST', '/fleet/jobs', { token: 'submitter', body });
    await claimJob(t);
    const before = await dumpProduct(t.store, PRODUCT);
    const res = await t.call('POST', '/fleet/jobs', {
      token: 'submitter',
      body: { ...body, bodyMd: 'v2' },
    });
    expect(expectProblem(res, 'IDEMPOTENCY_CONFLICT')).toMatchObject({ stage: 'assigned' });
    expect(await dumpProduct(t.store, PRODUCT)).toEqual(before);
  });

  it('DEPENDENCY_CYCLE and UNKNOWN_DEPENDENCY (422)', async () => {
    const a = await t.call('POST', '/fleet/jobs', {
      token: 'submitter',
      body: { idempotencyKey: 'a', bodyMd: 'a' },
    });
    const b = await submitJob(t, { deps: [a.json().id] });
    const before = await dumpProduct(t.store, PRODUCT);
    const cycle = await t.call('POST', '/fleet/jobs', {
      token: 'submitter',
      body: { idempotencyKey: 'a', bodyMd: 'a', deps: [b.id] },
    });
    expect(expectProblem(cycle, 'DEPENDENCY_CYCLE').cycle).toEqual(expect.arrayContaining([b.id]));
    const self = await t.call('POST', '/fleet/jobs', {
      token: 'submitter',
      body: { idempotencyKey: 'self', bodyMd: 'x', deps: [jobIdFor(PRODUCT, 'self')] },
    });
    expectProblem(self, 'DEPENDENCY_CYCLE');
    const unknown = await t.call('POST', '/fleet/jobs', {
      token: 'submitter',
      body: { idempotencyKey: 'c', bodyMd: 'c', deps: ['job_nope'] },
    });
    expect(expectProblem(unknown, 'UNKNOWN_DEPENDENCY').unknown).toEqual(['job_nope']);
    expect(await dumpProduct(t.store, PRODUCT)).toEqual(before);
  });

  it('PRECONDITION_FAILED (412): a stale If-Match on PATCH and on the other job mutations', async () => {
    const job = await submitJob(t);
    await claimJob(t, 'f1');
    const stale = (await t.call('GET', `/fleet/jobs/${job.id}`)).headers.etag as string;
    const me = { factoryId: 'f1', leaseEpoch: 1 };
    const renewed = await t.call('POST', `/fleet/jobs/${job.id}/lease/renew`, {
      token: 'factory',
      headers: { 'if-match': stale },
      body: me,
    });
    expect(renewed.statusCode).toBe(200); // the ETag was current: it passes (and changes the job)
    const before = await dumpProduct(t.store, PRODUCT);
    for (const [method, url, body] of [
      ['PATCH', `/fleet/jobs/${job.id}`, { ...me, to: 'building' }],
      ['POST', `/fleet/jobs/${job.id}/lease/renew`, me],
      ['POST', `/fleet/jobs/${job.id}/lease/release`, me],
      ['POST', `/fleet/jobs/${job.id}/progress`, me],
      ['POST', `/fleet/jobs/${job.id}/cancel`, undefined],
    ] as const) {
      const res = await t.call(method, url, {
        token: 'admin',
        headers: { 'if-match': stale },
        body,
      });
      expectProblem(res, 'PRECONDITION_FAILED');
    }
    // A list that holds neither, and a weak tag, fail too.
    const list = await t.call('PATCH', `/fleet/jobs/${job.id}`, {
      token: 'factory',
      headers: { 'if-match': `${stale}, "other"` },
      body: { ...me, to: 'building' },
    });
    expectProblem(list, 'PRECONDITION_FAILED');
    expect(await dumpProduct(t.store, PRODUCT)).toEqual(before);

    const current = (await t.call('GET', `/fleet/jobs/${job.id}`)).headers.etag as string;
    const ok = await t.call('PATCH', `/fleet/jobs/${job.id}`, {
      token: 'factory',
      headers: { 'if-match': `"other", ${current}` },
      body: { ...me, to: 'building' },
    });
    expect(ok.statusCode, ok.body).toBe(200);
    const star = await t.call('PATCH', `/fleet/jobs/${job.id}`, {
      token: 'factory',
      headers: { 'if-match': '*' },
      body: { ...me, to: 'review' },
    });
    expect(star.statusCode, star.body).toBe(200);
  });

  it('PAYLOAD_TOO_LARGE (413): a body over the limit, nothing stored', async () => {
    const res = await t.call('POST', '/fleet/jobs', {
      token: 'submitter',
      body: { idempotencyKey: 'big', bodyMd: 'x'.repeat(BODY_LIMIT) },
    });
    expect(expectProblem(res, 'PAYLOAD_TOO_LARGE')).toMatchObject({ limitBytes: BODY_LIMIT });
    expect(await dumpProduct(t.store, PRODUCT)).toEqual({ jobs: [], factories: [] });
    const ok = await t.call('POST', '/fleet/jobs', {
      token: 'submitter',
      body: { idempotencyKey: 'fits', bodyMd: 'x'.repeat(BODY_LIMIT - 100) },
    });
    expect(ok.statusCode).toBe(201);
  });

  it('STORE_UNAVAILABLE (503): /readyz and routes when the store is gone; generic detail, Retry-After', async () => {
    const job = await submitJob(t);
    await t.store.close();
    const ready = await t.call('GET', '/readyz', { token: null });
    const p = expectProblem(ready, 'STORE_UNAVAILABLE');
    expect(p.detail).toBe('the store is unavailable; try again shortly');
    expect(ready.headers['retry-after']).toBe('1');
    expectProblem(await t.call('GET', `/fleet/jobs/${job.id}`), 'STORE_UNAVAILABLE');
    const metrics = await t.call('GET', '/metrics', { token: null });
    expect(metrics.body).toMatch(/^fleet_store_up 0$/m);
  });
});

describe('unexpected failures', () => {
  it('answer 500 INTERNAL with a generic detail and log the error with its stack', async () => {
    const t = await buildTestApp({ store: await STORES[0]!.open() });
    // A coordinator method that throws something that is not a FleetError: a bug.
    t.coordinator.listJobs = async () => {
      throw new Error('secret internal detail /var/lib/fleet');
    };
    const res = await t.call('GET', '/fleet/jobs');
    const p = expectProblem(res, 'INTERNAL');
    expect(p.detail).toBe('an internal error occurred');
    expect(res.body).not.toContain('secret');
    const logged = t.logs.join('');
    expect(logged).toContain('secret internal detail');
    expect(logged).toMatch(/"stack":"Error: secret internal detail[^"]*\\n\s+at /);
    await t.app.close();
    await t.store.close();
  });
});
