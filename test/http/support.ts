/**
 * The HTTP tests' app: Fastify with `fleetPlugin` on a fresh store, a simulated clock,
 * and a fixed token → FleetAuth map, built apart from `listen` (tests use `inject`).
 * Plus the route table the role, tenancy, OpenAPI and property tests walk, and a dump of
 * every document of a product for "nothing changed" checks.
 */
import { EventEmitter, once } from 'node:events';
import { Writable } from 'node:stream';
import Fastify, {
  type FastifyInstance,
  type InjectOptions,
  type LightMyRequestResponse,
} from 'fastify';
import { expect } from 'vitest';
import {
  type ClaimWaitOutcome,
  type FleetAuth,
  FleetMetrics,
  type FleetPluginOptions,
  fleetFrameworkErrors,
  fleetPlugin,
} from '../../adapters/http/index.js';
import {
  Coordinator,
  type DocumentStore,
  ERROR_CODES,
  type ErrorCode,
  type JobDoc,
  type Page,
  SimulatedClock,
  type Stored,
} from '../../runtime/index.js';

export const PRODUCT = 'prod-a';
export const OTHER = 'prod-b';

/** Bearer tokens of the test app. */
export const TOKENS = {
  submitter: { productId: PRODUCT, roles: ['submitter'], subject: 'sub-1' },
  factory: { productId: PRODUCT, roles: ['factory'] },
  admin: { productId: PRODUCT, roles: ['admin'], subject: 'ops' },
  noRoles: { productId: PRODUCT, roles: [] },
  otherSubmitter: { productId: OTHER, roles: ['submitter'] },
  otherFactory: { productId: OTHER, roles: ['factory'] },
  otherAdmin: { productId: OTHER, roles: ['admin'] },
} as const satisfies Record<string, FleetAuth>;

export type TokenName = keyof typeof TOKENS;

/** Metrics that also announce long-poll waits, so tests wait on events, not sleeps. */
export class SpyMetrics extends FleetMetrics {
  readonly events = new EventEmitter();
  override claimWaitStarted(): void {
    super.claimWaitStarted();
    this.events.emit('started');
  }
  override claimWaitEnded(outcome: ClaimWaitOutcome): void {
    super.claimWaitEnded(outcome);
    this.events.emit('ended', outcome);
  }
  /** Resolves at the next `started` or `ended` (with the outcome). Call before triggering. */
  next(event: 'started' | 'ended'): Promise<unknown> {
    return once(this.events, event).then((args) => args[0]);
  }
}

export interface TestApp {
  app: FastifyInstance;
  store: DocumentStore;
  clock: SimulatedClock;
  coordinator: Coordinator;
  metrics: FleetMetrics;
  /** Log lines (JSON) the app wrote at level warn and above. */
  logs: string[];
  /** Injects a request with `token`'s bearer header (a string is sent as is, null sends none). */
  call(
    method: InjectOptions['method'],
    url: string,
    options?: {
      token?: TokenName | string | null;
      body?: unknown;
      headers?: Record<string, string>;
      /** Raw payload (body is then ignored). */
      payload?: string;
    },
  ): Promise<LightMyRequestResponse>;
}

export interface BuildOptions {
  store: DocumentStore;
  metrics?: FleetMetrics;
  bodyLimit?: number;
  claimRecheckMs?: number;
  leaseMs?: number;
  maxParkedClaims?: number;
  listPageBytes?: number;
  rateLimit?: FleetPluginOptions['rateLimit'];
  metricsToken?: string;
}

/** Builds (but does not listen) the test app around `store`. */
export async function buildTestApp(options: BuildOptions): Promise<TestApp> {
  const logs: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(chunk.toString('utf8'));
      done();
    },
  });
  const app = Fastify({
    logger: { level: 'warn', stream },
    frameworkErrors: fleetFrameworkErrors,
  });
  const clock = new SimulatedClock();
  const coordinator = new Coordinator({
    store: options.store,
    clock,
    random: () => 0.5,
    leaseMs: options.leaseMs ?? 60_000,
  });
  const metrics = options.metrics ?? new FleetMetrics();
  const tokens = new Map<string, FleetAuth>(Object.entries(TOKENS));
  const pluginOptions: FleetPluginOptions = {
    coordinator,
    metrics,
    authenticate: (request) => {
      const header = request.headers.authorization ?? '';
      const token = header.startsWith('Bearer ') ? header.slice(7) : '';
      return tokens.get(token) ?? null;
    },
    ...(options.bodyLimit === undefined ? {} : { bodyLimit: options.bodyLimit }),
    ...(options.claimRecheckMs === undefined ? {} : { claimRecheckMs: options.claimRecheckMs }),
    ...(options.maxParkedClaims === undefined ? {} : { maxParkedClaims: options.maxParkedClaims }),
    ...(options.listPageBytes === undefined ? {} : { listPageBytes: options.listPageBytes }),
    ...(options.rateLimit === undefined ? {} : { rateLimit: options.rateLimit }),
    ...(options.metricsToken === undefined ? {} : { metricsToken: options.metricsToken }),
  };
  await app.register(fleetPlugin, pluginOptions);
  await app.ready();
  return {
    app,
    store: options.store,
    clock,
    coordinator,
    metrics,
    logs,
    call(method, url, o = {}) {
      const headers: Record<string, string> = { ...o.headers };
      const token = o.token === undefined ? 'admin' : o.token;
      if (token !== null) headers.authorization = `Bearer ${token}`;
      const inject: InjectOptions = { method, url, headers };
      if (o.payload !== undefined) inject.payload = o.payload;
      else if (o.body !== undefined) {
        inject.payload = JSON.stringify(o.body);
        headers['content-type'] ??= 'application/json';
      }
      return app.inject(inject);
    },
  };
}

/** Closes a test app: the app (parked claims end), then queued coordinator work, then the store. */
export async function closeTestApp(t: TestApp): Promise<void> {
  await t.app.close();
  await t.coordinator.drain();
  await t.store.close();
}

/** Asserts `res` is a problem document with `code` (and its status), and returns it. */
export function expectProblem(
  res: LightMyRequestResponse,
  code: ErrorCode,
): Record<string, unknown> & { detail: string } {
  const body = res.json() as Record<string, unknown> & { detail: string };
  expect(
    { status: res.statusCode, code: body.code },
    `${res.statusCode} ${res.body.slice(0, 300)}`,
  ).toEqual({ status: ERROR_CODES[code].status, code });
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(body.status).toBe(res.statusCode);
  expect(body.type).toBe(`urn:fleet:problem:${code.toLowerCase().replaceAll('_', '-')}`);
  expect(body.title).toBe(ERROR_CODES[code].title);
  expect(typeof body.detail).toBe('string');
  expect(typeof body.instance).toBe('string');
  expect(res.body).not.toMatch(/ at .*\.(ts|js):\d+/); // no stack trace, ever
  return body;
}

/** Every document of a product: jobs and, per job, its events, runs, lease and artifacts; its factories. */
export async function dumpProduct(store: DocumentStore, productId: string): Promise<unknown> {
  const jobs: unknown[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<Stored<JobDoc>> = await store.jobs.list({ productId, limit: 500, cursor });
    for (const job of page.items) {
      jobs.push({
        job,
        events: await store.events.list(job.id, { limit: 10_000 }),
        runs: (await store.runs.list(job.id, { limit: 500 })).items,
        lease: await store.leases.read(job.id, job.id),
        artifacts: (await store.artifacts.list(job.id, { limit: 500 })).items,
      });
    }
    cursor = page.nextCursor;
  } while (cursor !== null);
  const factories = (await store.factories.list(productId, { limit: 500 })).items;
  return structuredClone({ jobs, factories });
}

/** Access of a route: which roles may call it (admin always may). */
export type RouteAccess = 'submitter' | 'factory' | 'admin' | 'any';

/** One route of API.md (and our additions), for table-driven tests. */
export interface RouteSpec {
  method: 'GET' | 'POST' | 'PATCH';
  /** The path for a job id (ignored by routes without one). */
  path: (id: string) => string;
  /** OpenAPI path. */
  openapi: string;
  access: RouteAccess;
  /** Acts on one job (tenancy: another product's job is a 404). */
  jobRoute: boolean;
  mutating: boolean;
  /** A body that passes validation. */
  body?: (ctx: { factoryId: string; leaseEpoch: number }) => unknown;
}

const e = encodeURIComponent;

export const ROUTES: RouteSpec[] = [
  {
    method: 'POST',
    path: () => '/fleet/jobs',
    openapi: '/fleet/jobs',
    access: 'submitter',
    jobRoute: false,
    mutating: true,
    body: () => ({ idempotencyKey: `k-${Math.random()}`, bodyMd: 'work' }),
  },
  {
    method: 'POST',
    path: () => '/fleet/jobs/batch',
    openapi: '/fleet/jobs/batch',
    access: 'submitter',
    jobRoute: false,
    mutating: true,
    body: () => ({ jobs: [{ idempotencyKey: `k-${Math.random()}`, bodyMd: 'work' }] }),
  },
  {
    method: 'GET',
    path: () => '/fleet/jobs',
    openapi: '/fleet/jobs',
    access: 'any',
    jobRoute: false,
    mutating: false,
  },
  {
    method: 'GET',
    path: (id) => `/fleet/jobs/${e(id)}`,
    openapi: '/fleet/jobs/{id}',
    access: 'any',
    jobRoute: true,
    mutating: false,
  },
  {
    method: 'PATCH',
    path: (id) => `/fleet/jobs/${e(id)}`,
    openapi: '/fleet/jobs/{id}',
    access: 'factory',
    jobRoute: true,
    mutating: true,
    body: (c) => ({ factoryId: c.factoryId, leaseEpoch: c.leaseEpoch, to: 'building' }),
  },
  {
    method: 'POST',
    path: () => '/fleet/claim',
    openapi: '/fleet/claim',
    access: 'factory',
    jobRoute: false,
    mutating: true,
    body: (c) => ({ factoryId: c.factoryId }),
  },
  {
    method: 'POST',
    path: (id) => `/fleet/jobs/${e(id)}/lease/renew`,
    openapi: '/fleet/jobs/{id}/lease/renew',
    access: 'factory',
    jobRoute: true,
    mutating: true,
    body: (c) => ({ factoryId: c.factoryId, leaseEpoch: c.leaseEpoch }),
  },
  {
    method: 'POST',
    path: (id) => `/fleet/jobs/${e(id)}/lease/release`,
    openapi: '/fleet/jobs/{id}/lease/release',
    access: 'factory',
    jobRoute: true,
    mutating: true,
    body: (c) => ({ factoryId: c.factoryId, leaseEpoch: c.leaseEpoch }),
  },
  {
    method: 'POST',
    path: (id) => `/fleet/jobs/${e(id)}/progress`,
    openapi: '/fleet/jobs/{id}/progress',
    access: 'factory',
    jobRoute: true,
    mutating: true,
    body: (c) => ({
      factoryId: c.factoryId,
      leaseEpoch: c.leaseEpoch,
      checkpoint: { wipBranch: 'wip/x' },
    }),
  },
  {
    method: 'POST',
    path: () => '/fleet/factories/heartbeat',
    openapi: '/fleet/factories/heartbeat',
    access: 'factory',
    jobRoute: false,
    mutating: true,
    body: (c) => ({ factoryId: c.factoryId, capabilities: [], health: 'ok' }),
  },
  {
    method: 'GET',
    path: () => '/fleet/factories',
    openapi: '/fleet/factories',
    access: 'any',
    jobRoute: false,
    mutating: false,
  },
  {
    method: 'GET',
    path: (id) => `/fleet/jobs/${e(id)}/runs`,
    openapi: '/fleet/jobs/{id}/runs',
    access: 'any',
    jobRoute: true,
    mutating: false,
  },
  {
    method: 'GET',
    path: (id) => `/fleet/jobs/${e(id)}/events`,
    openapi: '/fleet/jobs/{id}/events',
    access: 'any',
    jobRoute: true,
    mutating: false,
  },
  {
    method: 'GET',
    path: (id) => `/fleet/jobs/${e(id)}/artifacts`,
    openapi: '/fleet/jobs/{id}/artifacts',
    access: 'any',
    jobRoute: true,
    mutating: false,
  },
  {
    method: 'POST',
    path: (id) => `/fleet/jobs/${e(id)}/requeue`,
    openapi: '/fleet/jobs/{id}/requeue',
    access: 'admin',
    jobRoute: true,
    mutating: true,
  },
  {
    method: 'POST',
    path: (id) => `/fleet/jobs/${e(id)}/cancel`,
    openapi: '/fleet/jobs/{id}/cancel',
    access: 'admin',
    jobRoute: true,
    mutating: true,
    body: () => ({ reason: 'no longer needed' }),
  },
];

/** Submits a job as `token` (default submitter) and returns the response body; fails the test otherwise. */
export async function submitJob(
  t: TestApp,
  body: Record<string, unknown> = {},
  token: TokenName = 'submitter',
): Promise<{ id: string; stage: string; leaseEpoch: number } & Record<string, unknown>> {
  const res = await t.call('POST', '/fleet/jobs', {
    token,
    body: { idempotencyKey: `key-${Math.random().toString(36).slice(2)}`, bodyMd: 'work', ...body },
  });
  expect(res.statusCode, res.body).toBeLessThan(300);
  return res.json();
}

/** Claims as `factoryId` (token factory); fails the test unless a job is handed out. */
export async function claimJob(
  t: TestApp,
  factoryId = 'f1',
  token: TokenName = 'factory',
): Promise<{
  job: { id: string; leaseEpoch: number; stage: string };
  lease: { leaseEpoch: number; expiresAt: string };
  run: { id: string; attempt: number };
}> {
  const res = await t.call('POST', '/fleet/claim', { token, body: { factoryId } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}
