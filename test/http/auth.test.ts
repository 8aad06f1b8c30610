/**
 * Roles and tenancy, route by route: who may call what (admin may call everything), and
 * that another product's job is a 404 on every job route, exactly as a missing job,
 * with nothing changed. On every store adapter.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { STORES } from '../support/stores.js';
import {
  buildTestApp,
  claimJob,
  dumpProduct,
  expectProblem,
  OTHER,
  PRODUCT,
  ROUTES,
  type RouteAccess,
  type RouteSpec,
  submitJob,
  type TestApp,
  type TokenName,
} from './support.js';

const ROLE_TOKENS: { token: TokenName; role: RouteAccess | 'none' }[] = [
  { token: 'submitter', role: 'submitter' },
  { token: 'factory', role: 'factory' },
  { token: 'admin', role: 'admin' },
  { token: 'noRoles', role: 'none' },
];

const admitted = (route: RouteSpec, role: RouteAccess | 'none'): boolean =>
  role === 'admin' || (role !== 'none' && (route.access === 'any' || route.access === role));

const call = (t: TestApp, route: RouteSpec, token: TokenName | null, id: string, epoch = 1) =>
  t.call(route.method, route.path(id), {
    token,
    ...(route.body ? { body: route.body({ factoryId: 'f1', leaseEpoch: epoch }) } : {}),
  });

describe.each(STORES)('auth on $name', (factory) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await buildTestApp({ store: await factory.open() });
  });
  afterEach(async () => {
    await t.app.close();
    await t.coordinator.drain();
    await t.store.close();
  });

  it('role matrix: each route admits its roles and admin, 403 for the rest, 401 without a token', async () => {
    const matrix: string[] = [];
    for (const route of ROUTES) {
      for (const { token, role } of ROLE_TOKENS) {
        // A freshly claimed job per call, so an admitted call has something to act on.
        await submitJob(t);
        const grant = await claimJob(t, 'f1');
        const res = await call(t, route, token, grant.job.id, grant.lease.leaseEpoch);
        matrix.push(`${route.method} ${route.path(':id')} ${token} → ${res.statusCode}`);
        if (admitted(route, role)) {
          // Admitted: whatever the route decides (requeue of an assigned job is a 409),
          // never a 401 or 403.
          expect(
            [401, 403],
            `${route.method} ${route.path(':id')} as ${token}: ${res.body}`,
          ).not.toContain(res.statusCode);
          expect(res.statusCode).toBeLessThan(500);
          if (route.access !== 'admin') expect(res.statusCode, res.body).toBeLessThan(300);
        } else {
          expectProblem(res, 'FORBIDDEN');
        }
      }
      expectProblem(await call(t, route, null, 'job_x'), 'UNAUTHENTICATED');
      expectProblem(
        await t.call(route.method, route.path('job_x'), { token: 'not-a-token' }),
        'UNAUTHENTICATED',
      );
    }
    expect(matrix).toHaveLength(ROUTES.length * ROLE_TOKENS.length);
  });

  it('tenancy: another product’s job is a 404 on every job route, and nothing changes', async () => {
    const job = await submitJob(t);
    const grant = await claimJob(t, 'f1');
    await t.call('POST', `/fleet/jobs/${job.id}/progress`, {
      token: 'factory',
      body: { factoryId: 'f1', leaseEpoch: 1, artifacts: [{ name: 'a', uri: 'blob://a' }] },
    });
    const before = await dumpProduct(t.store, PRODUCT);
    const jobRoutes = ROUTES.filter((r) => r.jobRoute);
    expect(jobRoutes.length).toBe(10);
    for (const route of jobRoutes) {
      const callers = [
        { token: 'otherAdmin', role: 'admin' },
        { token: 'otherFactory', role: 'factory' },
        { token: 'otherSubmitter', role: 'submitter' },
      ] as const;
      for (const { token, role } of callers) {
        if (!admitted(route, role)) continue;
        const res = await call(t, route, token, job.id, grant.lease.leaseEpoch);
        const missing = await call(t, route, token, 'job_does_not_exist', grant.lease.leaseEpoch);
        const p = expectProblem(res, 'NOT_FOUND');
        const q = expectProblem(missing, 'NOT_FOUND');
        // Exactly as if it did not exist: same shape, no hint of the other product.
        expect(p.detail.replace(job.id, 'ID')).toBe(q.detail.replace('job_does_not_exist', 'ID'));
        expect(res.body).not.toContain(PRODUCT);
      }
    }
    // With an If-Match the answer is still a 404 (never a 412 that would reveal the job).
    const etag = (await t.call('GET', `/fleet/jobs/${job.id}`)).headers.etag as string;
    for (const route of jobRoutes.filter((r) => r.mutating)) {
      const res = await t.call(route.method, route.path(job.id), {
        token: 'otherAdmin',
        headers: { 'if-match': `"nope", ${etag}` },
        ...(route.body ? { body: route.body({ factoryId: 'f1', leaseEpoch: 1 }) } : {}),
      });
      expectProblem(res, 'NOT_FOUND');
    }
    expect(await dumpProduct(t.store, PRODUCT)).toEqual(before);
  });

  it('tenancy: lists, claims and factories see only the caller’s product', async () => {
    const mine = await submitJob(t);
    await t.call('POST', '/fleet/factories/heartbeat', {
      token: 'factory',
      body: { factoryId: 'f-a', capabilities: [], health: 'ok' },
    });
    const theirs = await submitJob(t, {}, 'otherSubmitter');
    expect(theirs.productId).toBe(OTHER);
    const list = (await t.call('GET', '/fleet/jobs', { token: 'otherSubmitter' })).json();
    expect(list.items.map((j: { id: string }) => j.id)).toEqual([theirs.id]);
    expect((await t.call('GET', '/fleet/factories', { token: 'otherAdmin' })).json().items).toEqual(
      [],
    );
    const claim = await t.call('POST', '/fleet/claim', {
      token: 'otherFactory',
      body: { factoryId: 'f-b' },
    });
    expect(claim.json().job.id).toBe(theirs.id);
    const none = await t.call('POST', '/fleet/claim', {
      token: 'otherFactory',
      body: { factoryId: 'f-b' },
    });
    expect(none.statusCode).toBe(204);
    expect((await t.call('GET', `/fleet/jobs/${mine.id}`)).json().stage).toBe('queued');
    // The same idempotency key in two products is two jobs.
    const key = { idempotencyKey: 'shared-key', bodyMd: 'x' };
    const a = (await t.call('POST', '/fleet/jobs', { token: 'submitter', body: key })).json();
    const b = await t.call('POST', '/fleet/jobs', { token: 'otherSubmitter', body: key });
    expect(b.statusCode).toBe(201);
    expect(b.json().id).not.toBe(a.id);
  });
});
