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
import type { LightMyRequestResponse } from 'fastify';
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

NEAR_VALID['POST /fleet/jobs/batch'] = fc.record({
  jobs: fc.array(NEAR_VALID['POST /fleet/jobs']!, { maxLength: 3 }),
});

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

/**
 * Sends `runs` requests drawn from `requests(ids)` (the seeded jobs' ids) with `send` to
 * a seeded app on a fresh store: never a 5xx, every error a problem document whose code
 * has its status (and passes `check`), and a rejected request leaves both products'
 * documents exactly as they were.
 */
async function neverA5xx<R>(
  factory: (typeof STORES)[number],
  runs: number,
  requests: (ids: string[]) => fc.Arbitrary<R>,
  send: (t: TestApp, r: R) => Promise<{ res: LightMyRequestResponse; where: string }>,
  check: (problem: { detail: string }, where: string) => void = () => {},
): Promise<void> {
  const t = await buildTestApp({ store: await factory.open(), bodyLimit: 16 * 1024 });
  try {
    const { ids } = await seed(t);
    const dump = async () => ({
      a: await dumpProduct(t.store, PRODUCT),
      b: await dumpProduct(t.store, OTHER),
    });
    await fc.assert(
      fc.asyncProperty(requests(ids), async (r) => {
        const before = await dump();
        const { res, where } = await send(t, r);
        expect(res.statusCode, `${where}: ${res.body.slice(0, 300)}`).toBeLessThan(500);
        if (res.statusCode >= 400) {
          expect(res.headers['content-type'], where).toMatch(/^application\/problem\+json/);
          const problem = res.json() as { code: ErrorCode; status: number; detail: string };
          expect(ERROR_CODES[problem.code]?.status, where).toBe(res.statusCode);
          expect(problem.status).toBe(res.statusCode);
          check(problem, where);
          expect(await dump(), `${where} → ${res.statusCode} changed the store`).toEqual(before);
        }
      }),
      { numRuns: runs },
    );
  } finally {
    await t.app.close();
    await t.coordinator.drain();
    await t.store.close();
  }
}

describe.each(STORES)('property on $name', (factory) => {
  // A bound, not a speed goal: on Cosmos DB (cosmosdb-server) each request's before/after
  // dump is many store round trips, about 30 s for the whole run on a loaded machine.
  it(`${RUNS} random requests: never a 5xx; a rejected request changes nothing`, {
    timeout: 240_000,
  }, async () => {
    await neverA5xx(factory, RUNS, requestArb, async (t, r) => {
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
      const res = await t.call(r.target.method, url, {
        token: r.token,
        headers,
        ...(payload === undefined ? {} : { payload }),
      });
      return { res, where: `${r.target.method} ${url}` };
    });
  });
});

// ---------------------------------------------------------------------------
// Query strings and headers (issue 14)
// ---------------------------------------------------------------------------

/** Every route a request can be aimed at, with its method; the event stream excepted (it never ends). */
const QUERY_TARGETS = [
  ...ROUTES.map((r) => ({ method: r.method, path: r.path, body: r.body ?? null })),
  { method: 'GET' as const, path: () => '/fleet/overview', body: null },
  { method: 'GET' as const, path: () => '/fleet/me', body: null },
  { method: 'GET' as const, path: () => '/fleet/admin/backup', body: null },
  { method: 'GET' as const, path: () => '/metrics', body: null },
  { method: 'GET' as const, path: () => '/readyz', body: null },
];

/** Big values: near and past every length limit of the schemas (2,000 for cursors and If-Match). */
const huge = fc
  .constantFrom(1999, 2000, 2001, 4096, 20_000)
  .chain((n) => fc.constantFrom('a', '9', '%41', 'é', '"').map((c) => c.repeat(n)));

const queryKey = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom('limit', 'cursor', 'stage', 'view', 'job', 'waitMs', 'factoryId'),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom('__proto__', 'constructor', 'limit[]', 'limit[0]', 'a[b]', 'x', ''),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }) },
);

const queryValue = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      '1',
      '50',
      '500',
      '501',
      '0',
      '-1',
      '1.5',
      '1e3',
      '0x10',
      ' 1',
      '',
      'queued',
      'shipped',
      'nope',
      'full',
      'summary',
      'eyJzZXEiOjF9',
      'not-a-cursor',
      '9007199254740993',
    ),
  },
  { weight: 2, arbitrary: huge },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
);

/** A query string: a few pairs, or thousands of one repeated or distinct parameter, or raw junk. */
const queryString = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .array(fc.tuple(queryKey, queryValue), { maxLength: 6 })
      .map((pairs) =>
        pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&'),
      ),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({
        key: fc.constantFrom('limit', 'cursor', 'stage', 'x'),
        count: fc.integer({ min: 500, max: 3000 }),
        distinct: fc.boolean(),
      })
      .map(({ key, count, distinct }) =>
        Array.from({ length: count }, (_, i) => `${distinct ? `${key}${i}` : key}=1`).join('&'),
      ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '%',
      '%ZZ',
      '%00',
      '&&&',
      '==',
      'limit',
      'limit=',
      '=1',
      'a=%E0%A4%A',
    ),
  },
);

const authorization = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .constantFrom<keyof typeof TOKENS>('admin', 'factory', 'submitter', 'otherAdmin')
      .map((t) => `Bearer ${t}`),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom('Bearer', 'Bearer ', 'bearer admin x', 'Basic YWRtaW4=', ''),
  },
  { weight: 1, arbitrary: huge.map((h) => `Bearer ${h}`) },
);

const entityTags = fc.oneof(
  fc.constantFrom('*', '"x"', 'W/"x"', '"a", "b"', ',,,', '"', 'x'),
  huge,
  fc
    .integer({ min: 2, max: 1500 })
    .map((n) => Array.from({ length: n }, (_, i) => `"t${i}"`).join(', ')),
);

const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'APPLICATION/JSON',
  'application/json;charset=latin1',
  'application/json, text/plain',
  'application/problem+json',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'text/plain',
  ';;;',
  '',
);

/** Extra headers: none, a few, or hundreds (Node's count limit is 2,000; inject has none). */
const extraHeaders = fc.oneof(
  { weight: 4, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 600 }) },
);

const headerRequest = (ids: string[]) =>
  fc.record({
    target: fc.constantFrom(...QUERY_TARGETS),
    id: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...ids) }, { weight: 1, arbitrary: huge }),
    query: queryString,
    authorization,
    ifMatch: sometimes(entityTags, 5),
    ifNoneMatch: sometimes(entityTags, 8),
    contentType: sometimes(contentType, 4),
    lastEventId: sometimes(fc.oneof(fc.constantFrom('1', '-1', 'x', '1-2'), huge), 10),
    extra: extraHeaders,
    validBody: fc.boolean(),
  });

const QUERY_RUNS = 300;

// The HTTP layer refuses bad query strings and headers before any store is asked; Cosmos
// DB would only add minutes to the dumps around each request.
describe.each(STORES.filter((s) => s.name !== 'cosmos'))(
  'query strings and headers on $name',
  (factory) => {
    it(`${QUERY_RUNS} random query strings and headers on every route: never a 5xx; a rejected request changes nothing`, {
      timeout: 180_000,
    }, async () => {
      await neverA5xx(
        factory,
        QUERY_RUNS,
        headerRequest,
        async (t, r) => {
          const url = `${r.target.path(r.id)}${r.query === '' ? '' : `?${r.query}`}`;
          const headers: Record<string, string> = {};
          if (r.authorization !== '') headers.authorization = r.authorization;
          if (r.ifMatch !== null) headers['if-match'] = r.ifMatch;
          if (r.ifNoneMatch !== null) headers['if-none-match'] = r.ifNoneMatch;
          if (r.contentType !== null && r.contentType !== '')
            headers['content-type'] = r.contentType;
          if (r.lastEventId !== null) headers['last-event-id'] = r.lastEventId;
          for (let i = 0; i < r.extra; i++) headers[`x-extra-${i}`] = String(i);
          const body =
            r.target.body && r.validBody
              ? r.target.body({ factoryId: 'f1', leaseEpoch: 1 })
              : r.target.method === 'GET'
                ? undefined
                : {};
          const res = await t.call(r.target.method, url, {
            token: null,
            headers,
            ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
          });
          return { res, where: `${r.target.method} ${url.slice(0, 200)}` };
        },
        // A detail names what is wrong; it never echoes a 20,000-character value.
        (problem, where) => expect(problem.detail.length, where).toBeLessThan(2000),
      );
    });
  },
);
