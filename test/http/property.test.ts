/**
 * Property (fast-check): random JSON bodies, random ids and paths, valid and invalid
 * tokens, against every mutating route (and random routes) → never a 5xx, every error
 * is a well-formed problem document, and a rejected request (≥ 400) leaves the store
 * exactly as it was: every job, event, run, lease, artifact and factory of both
 * products. Bodies are drawn both at random and near the valid shape of each route, so
 * the deeper answers (FENCED, INVALID_TRANSITION, NOT_FOUND...) are reached too.
 * On a failure fast-check prints the seed and the shrunk request; keep the seed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, type ErrorCode } from '../../runtime/index.js';
import { STORES } from '../support/stores.js';
import {
  buildTestApp,
  claimJob,
  dumpProduct,
  OTHER,
  PRODUCT,
  ROUTES,
  submitJob,
  type TestApp,
  type TOKENS,
} from './support.js';

const RUNS = 200;

interface Seeded {
  ids: string[];
}

/** A product with jobs in several stages, and another product with one job. */
async function seed(t: TestApp): Promise<Seeded> {
  const queued = await submitJob(t);
  const assigned = await submitJob(t);
  const building = await submitJob(t);
  const dead = await submitJob(t);
  await submitJob(t, { deps: [queued.id] }); // blocked
  await t.call('POST', '/fleet/factories/heartbeat', {
    token: 'factory',
    body: { factoryId: 'f1', capabilities: [], health: 'ok' },
  });
  await claimJob(t, 'f1'); // queued (the oldest) → assigned
  const b = await claimJob(t, 'f2');
  await t.call('PATCH', `/fleet/jobs/${b.job.id}`, {
    token: 'factory',
    body: { factoryId: 'f2', leaseEpoch: b.lease.leaseEpoch, to: 'building' },
  });
  await t.call('POST', `/fleet/jobs/${dead.id}/cancel`, { token: 'admin' });
  const other = await submitJob(t, {}, 'otherSubmitter');
  return { ids: [queued.id, assigned.id, building.id, dead.id, other.id] };
}

const STAGES = ['building', 'review', 'testing', 'shipped', 'failed', 'queued', 'nope'];

const factoryId = fc.oneof(fc.constantFrom('f1', 'f2', 'fx'), fc.string({ maxLength: 3 }));
const leaseEpoch = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(-1, 1.5, '1') },
);
const checkpoint = fc.record({ wipBranch: fc.string({ maxLength: 8 }) }, { requiredKeys: [] });
const insights = fc.record(
  { turns: fc.integer({ min: -1, max: 3 }), costUsd: fc.double({ min: 0, max: 1, noNaN: true }) },
  { requiredKeys: [] },
);
const optional = { requiredKeys: [] as never[] };

/** Per mutating route (by operation), a body near its valid shape: right keys, values sometimes wrong. */
const NEAR_VALID: Record<string, fc.Arbitrary<unknown>> = {
  'POST /fleet/jobs': fc
    .record({
      idempotencyKey: fc.oneof(fc.constantFrom('k1', 'k2', 'k3'), fc.string({ maxLength: 4 })),
      bodyMd: fc.oneof({ weight: 5, arbitrary: fc.string({ maxLength: 10 }) }, fc.integer()),
    })
    .chain((base) =>
      fc
        .record(
          {
            priority: fc.constantFrom('critical', 'high', 'low', 'urgent'),
            deps: fc.array(fc.constantFrom('job_x', 'k1'), { maxLength: 2 }),
            capabilities: fc.array(fc.constantFrom('node', 'gpu', 'bad cap!'), { maxLength: 2 }),
            retry: fc.record({ max: fc.integer({ min: -1, max: 2 }) }),
          },
          optional,
        )
        .map((extra) => ({ ...base, ...extra })),
    ),
  'PATCH /fleet/jobs/{id}': fc.record(
    {
      factoryId,
      leaseEpoch,
      to: fc.constantFrom(...STAGES),
      checkpoint,
      insights,
      error: fc.record({ class: fc.constantFrom('transient', 'fatal', '') }),
    },
    { requiredKeys: ['factoryId', 'leaseEpoch', 'to'] },
  ),
  'POST /fleet/claim': fc.record(
    {
      factoryId,
      capabilities: fc.array(fc.constantFrom('node', 'gpu'), { maxLength: 2 }),
      waitMs: fc.constantFrom(0, -5, 99_999),
    },
    { requiredKeys: ['factoryId'] },
  ),
  'POST /fleet/jobs/{id}/lease/renew': fc.record(
    { factoryId, leaseEpoch, extendMs: fc.constantFrom(10, 5000) },
    { requiredKeys: ['factoryId', 'leaseEpoch'] },
  ),
  'POST /fleet/jobs/{id}/lease/release': fc.record(
    { factoryId, leaseEpoch, reason: fc.string({ maxLength: 5 }) },
    { requiredKeys: ['factoryId', 'leaseEpoch'] },
  ),
  'POST /fleet/jobs/{id}/progress': fc.record(
    { factoryId, leaseEpoch, checkpoint, insights },
    { requiredKeys: ['factoryId', 'leaseEpoch'] },
  ),
  'POST /fleet/factories/heartbeat': fc.record(
    {
      factoryId,
      capabilities: fc.array(fc.constantFrom('node', 'gpu', ''), { maxLength: 2 }),
      health: fc.constantFrom('ok', 'degraded', 'sick'),
      seatLimit: fc.oneof(fc.constant(null), fc.integer({ min: -1, max: 3 })),
    },
    { requiredKeys: ['factoryId', 'capabilities', 'health'] },
  ),
  'POST /fleet/jobs/{id}/requeue': fc.constantFrom(undefined, {}, null),
  'POST /fleet/jobs/{id}/cancel': fc.oneof(
    fc.constant(undefined),
    fc.record({ reason: fc.string({ maxLength: 5 }) }, optional),
  ),
};

const MUTATING = ROUTES.filter((r) => r.mutating);

/** null most of the time, else a value of `arb`. */
const sometimes = <T>(arb: fc.Arbitrary<T>, oneIn: number) =>
  fc.oneof({ weight: oneIn - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: arb });

/** Sometimes adds an unknown member (always a 400: bodies are strict). */
const maybeExtra = (body: fc.Arbitrary<unknown>) =>
  fc
    .tuple(body, sometimes(fc.constantFrom('extra', 'productId', '__proto__'), 12))
    .map(([b, extra]) =>
      extra !== null && b !== null && typeof b === 'object' && !Array.isArray(b)
        ? { ...b, [extra]: 1 }
        : b,
    );

const routeTarget = fc.constantFrom(...MUTATING).chain((route) =>
  fc.record({
    route: fc.constant(route),
    method: fc.constant(route.method),
    body: fc.oneof(
      { weight: 6, arbitrary: maybeExtra(NEAR_VALID[`${route.method} ${route.openapi}`]!) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
      { weight: 1, arbitrary: fc.object({ maxDepth: 2 }) },
    ),
  }),
);

const randomTarget = fc.record({
  route: fc.constant(null),
  method: fc.constantFrom('GET', 'POST', 'PATCH', 'PUT', 'DELETE'),
  body: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined)),
});

const requestArb = (ids: string[]) =>
  fc.record({
    target: fc.oneof({ weight: 6, arbitrary: routeTarget }, { weight: 1, arbitrary: randomTarget }),
    id: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...ids) },
      { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
    ),
    randomPath: fc.array(fc.string({ unit: 'grapheme', maxLength: 8 }), { maxLength: 4 }),
    token: fc.constantFrom<keyof typeof TOKENS | 'bogus' | null>(
      'admin',
      'admin',
      'admin',
      'factory',
      'factory',
      'submitter',
      'noRoles',
      'otherAdmin',
      'otherFactory',
      'bogus',
      null,
    ),
    raw: sometimes(fc.string({ maxLength: 30 }), 12),
    contentType: fc.oneof(
      { weight: 12, arbitrary: fc.constant('application/json') },
      {
        weight: 1,
        arbitrary: fc.constantFrom('application/json; charset=utf-8', 'text/plain', ''),
      },
    ),
    ifMatch: sometimes(fc.constantFrom('*', '"m1"', 'W/"x"', '"a", "b"'), 8),
  });

describe.each(STORES)('property on $name', (factory) => {
  it(`${RUNS} random requests: never a 5xx; a rejected request changes nothing`, async () => {
    const t = await buildTestApp({ store: await factory.open(), bodyLimit: 16 * 1024 });
    try {
      const { ids } = await seed(t);
      const dump = async () => ({
        a: await dumpProduct(t.store, PRODUCT),
        b: await dumpProduct(t.store, OTHER),
      });
      await fc.assert(
        fc.asyncProperty(requestArb(ids), async (r) => {
          const url = r.target.route
            ? r.target.route.path(r.id)
            : `/fleet/${r.randomPath.map(encodeURIComponent).join('/')}`;
          let body = r.target.body;
          // A long-poll would only slow the run down; every other waitMs is kept.
          if (body && typeof body === 'object' && !Array.isArray(body)) {
            const w = (body as { waitMs?: unknown }).waitMs;
            if (typeof w === 'number' && w > 0 && w <= 30_000) body = { ...body, waitMs: 0 };
          }
          const headers: Record<string, string> = {};
          if (r.contentType !== '') headers['content-type'] = r.contentType;
          if (r.ifMatch !== null) headers['if-match'] = r.ifMatch;
          const payload =
            r.raw !== null ? r.raw : body === undefined ? undefined : JSON.stringify(body);
          const before = await dump();
          const res = await t.call(r.target.method, url, {
            token: r.token,
            headers,
            ...(payload === undefined ? {} : { payload }),
          });
          expect(res.statusCode, `${r.target.method} ${url}: ${res.body}`).toBeLessThan(500);
          if (res.statusCode >= 400) {
            expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
            const problem = res.json() as { code: ErrorCode; status: number };
            expect(ERROR_CODES[problem.code]?.status).toBe(res.statusCode);
            expect(problem.status).toBe(res.statusCode);
            expect(
              await dump(),
              `${r.target.method} ${url} → ${res.statusCode} changed the store`,
            ).toEqual(before);
          }
        }),
        { numRuns: RUNS },
      );
    } finally {
      await t.app.close();
      await t.coordinator.drain();
      await t.store.close();
    }
  });
});
