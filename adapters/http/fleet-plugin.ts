/**
 * `fleetPlugin`: the REST contract of API.md as a Fastify plugin that a host service
 * registers behind its own authentication.
 *
 * ```ts
 * app.register(fleetPlugin, {
 *   store: openSqliteStore(),
 *   authenticate: (req) => lookUp(req.headers.authorization), // → { productId, roles } | null
 * });
 * ```
 *
 * The plugin is encapsulated: its validator (zod), JSON body parser, error handler
 * (problem documents), hooks and docs apply to its own routes only, never to the
 * host's. It serves, relative to the registration prefix:
 * - `/fleet/...`: every route of API.md, plus `POST /fleet/jobs/:id/progress`,
 *   `GET /fleet/jobs/:id/artifacts`, `GET /fleet/admin/backup` (`backup-routes.ts`) and
 *   `POST /fleet/admin/prune` (`retention.ts`);
 * - `/healthz`, `/readyz`, `/metrics` (no auth; `/metrics` behind `metricsToken` when set);
 * - `/docs` (Swagger UI) and `/docs/json` (OpenAPI 3.1), generated from the zod schemas;
 * - the inspector: `/inspector/...` pages and `/fleet/overview`, `/fleet/me`,
 *   `/fleet/stream` (Server-Sent Events), unless `inspector: false`.
 *
 * Unknown routes under `/fleet` answer a 404 problem document; so do unknown routes in
 * the registration's whole scope unless the host has its own not-found handler (see
 * {@link FleetPluginOptions.notFoundHandler}).
 *
 * On close the plugin ends parked long-poll claims (204) and unsubscribes from the
 * coordinator; it never closes the store, which belongs to the host.
 */
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { type Clock, Coordinator, type DocumentStore } from '../../runtime/index.js';
import { registerAdminRoutes } from './admin-routes.js';
import type { Authenticate } from './auth.js';
import { type BackupState, registerBackupRoutes } from './backup-routes.js';
import { registerBatchRoutes } from './batch-routes.js';
import { ClaimWaiters } from './claim-waiters.js';
import { forbiddenKeyError } from './forbidden-keys.js';
import { MAX_JOB_ID_LENGTH } from './http-schemas.js';
import { createInspectorContext } from './inspector-context.js';
import { registerInspectorRoutes } from './inspector-routes.js';
import { registerJobRoutes } from './job-routes.js';
import { FleetMetrics } from './metrics.js';
import { registerOpenApi } from './openapi.js';
import { registerOverviewRoutes } from './overview-routes.js';
import { paramLengthLimit, routeNotFound, sendProblem } from './problem.js';
import { type RateLimit, registerRateLimit } from './rate-limit.js';
import { registerPruneRoutes } from './retention.js';
import { DEFAULT_LIST_PAGE_BYTES, type FleetApp, type RouteContext } from './route-context.js';
import { registerServiceRoutes } from './service-routes.js';
import { registerStreamRoutes } from './stream-routes.js';
import { registerWorkerRoutes } from './worker-routes.js';

/** Options of {@link fleetPlugin}. */
export interface FleetPluginOptions {
  /** Either a ready coordinator (the standalone server passes its own, shared with its supervisor)... */
  coordinator?: Coordinator;
  /** ...or a store (+ optional clock, leaseMs) from which the plugin builds one. */
  store?: DocumentStore;
  /** Clock of the coordinator built from `store`. @defaultValue the system clock */
  clock?: Clock;
  /** Lease length of the coordinator built from `store`, in ms (≥ 1000). @defaultValue 60000 */
  leaseMs?: number;
  /** The host's authentication: who calls, for which product, with which roles. */
  authenticate: Authenticate;
  /** Largest request body in bytes. @defaultValue 1 MiB */
  bodyLimit?: number;
  /** Shared metrics registry (the server passes one it also feeds from the supervisor); created if absent. */
  metrics?: FleetMetrics;
  /**
   * How often a parked long-poll claim looks again even without news, in ms: it finds
   * jobs queued by other processes, and seats freed under a factory's `seatLimit`.
   * @defaultValue 2000
   */
  claimRecheckMs?: number;
  /**
   * Long-poll claims one caller may have parked at once; one more answers
   * `429 RATE_LIMITED` with `Retry-After` (a claim that finds a job at once is never
   * refused). A caller is a product and `subject` (one token of the standalone server).
   * @defaultValue 64
   */
  maxParkedClaims?: number;
  /**
   * Byte budget of a page of `GET /fleet/jobs`: a page ends early once the stored JSON
   * of its jobs would pass it (it always holds at least one job).
   * @defaultValue 4 MiB
   */
  listPageBytes?: number;
  /**
   * Serve Swagger UI at `/docs` and the OpenAPI document at `/docs/json`. Skipped (with a
   * warning) when the host already registered @fastify/swagger in this scope.
   * @defaultValue true
   */
  docs?: boolean;
  /**
   * Also answer unknown routes outside `/fleet` (in the registration's scope: the
   * whole server when registered without a prefix) with 404 problem documents. Left
   * alone when the host set its own not-found handler before registering the plugin;
   * pass `false` if the host sets one afterwards.
   * @defaultValue true
   */
  notFoundHandler?: boolean;
  /**
   * Serve the inspector: its pages under `/inspector` and the routes `/fleet/overview`,
   * `/fleet/me` and `/fleet/stream`.
   * @defaultValue true
   */
  inspector?: boolean;
  /** A comment line on every open event stream this often, in ms. @defaultValue 15000 */
  streamHeartbeatMs?: number;
  /**
   * How often a job's event stream re-reads the store without news, in ms: it finds
   * events written by other processes. @defaultValue 2000
   */
  streamRecheckMs?: number;
  /**
   * Folder where `GET /fleet/admin/backup` writes its copy of the database before
   * sending it (created 0700 if missing; needs room for one copy). Put it on the
   * database's disk rather than a RAM-backed temporary folder.
   * @defaultValue the OS's temporary folder
   */
  backupDir?: string;
  /**
   * Requests one caller (a product and `subject`) may make to the `/fleet` routes per
   * window; one more is `429 RATE_LIMITED` with `Retry-After` (`rate-limit.ts`). A
   * long-poll claim counts once. @defaultValue none
   */
  rateLimit?: RateLimit;
  /**
   * Require `Authorization: Bearer <metricsToken>` on `GET /metrics` (`401` otherwise;
   * compared in constant time). The metrics name every product. @defaultValue none: open
   */
  metricsToken?: string;
}

const DEFAULT_BODY_LIMIT = 1024 * 1024;
const DEFAULT_RECHECK_MS = 2000;
const DEFAULT_MAX_PARKED_CLAIMS = 64;

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** Options, checked once at registration: a bad combination fails `app.ready()`. */
const Options = z
  .object({
    coordinator: z.instanceof(Coordinator).optional(),
    store: z
      .custom<DocumentStore>(
        (v) => isObject(v) && isObject(v.jobs) && typeof v.ping === 'function',
        'store must be a DocumentStore',
      )
      .optional(),
    clock: z
      .custom<Clock>((v) => isObject(v) && typeof v.now === 'function', 'clock must be a Clock')
      .optional(),
    leaseMs: z.number().int().min(1000).optional(),
    authenticate: z.custom<Authenticate>(
      (v) => typeof v === 'function',
      'authenticate must be a function (request) => FleetAuth | null',
    ),
    bodyLimit: z.number().int().positive().optional(),
    metrics: z.instanceof(FleetMetrics).optional(),
    claimRecheckMs: z.number().int().min(10).max(60_000).optional(),
    maxParkedClaims: z.number().int().min(1).max(1_000_000).optional(),
    listPageBytes: z.number().int().min(1024).optional(),
    docs: z.boolean().optional(),
    notFoundHandler: z.boolean().optional(),
    inspector: z.boolean().optional(),
    streamHeartbeatMs: z.number().int().min(100).max(300_000).optional(),
    streamRecheckMs: z.number().int().min(10).max(60_000).optional(),
    backupDir: z.string().min(1).optional(),
    metricsToken: z
      .string()
      .regex(/^[\x21-\x7e]{1,1000}$/, 'must be 1 to 1000 printable ASCII characters without spaces')
      .optional(),
    rateLimit: z
      .strictObject({
        max: z.number().int().min(1),
        windowMs: z.number().int().min(1000).max(86_400_000),
      })
      .optional(),
  })
  .refine((o) => (o.coordinator === undefined) !== (o.store === undefined), {
    message: 'give either a coordinator or a store, not both and not neither',
  })
  .refine(
    (o) => o.coordinator === undefined || (o.clock === undefined && o.leaseMs === undefined),
    {
      message:
        'clock and leaseMs configure the coordinator built from store; a given coordinator has its own',
    },
  );

function checkOptions(options: unknown): z.output<typeof Options> {
  const r = Options.safeParse(options);
  if (r.success) return r.data;
  const detail = r.error.issues
    .map((i) => `${i.path.length > 0 ? i.path.map(String).join('.') : 'options'}: ${i.message}`)
    .join('; ');
  throw new TypeError(`fleetPlugin: invalid options: ${detail}`);
}

const fleetPluginImpl: FastifyPluginAsync<FleetPluginOptions> = async (fastify, options) => {
  const o = checkOptions(options);
  const app = fastify.withTypeProvider<ZodTypeProvider>() as FleetApp;
  const coordinator =
    o.coordinator ??
    new Coordinator({
      store: o.store!,
      ...(o.clock ? { clock: o.clock } : {}),
      ...(o.leaseMs === undefined ? {} : { leaseMs: o.leaseMs }),
      logger: fastify.log.child({ component: 'coordinator' }),
    });
  const metrics = o.metrics ?? new FleetMetrics();
  const waiters = new ClaimWaiters();
  const maxParamLength = paramLengthLimit(fastify);
  if (maxParamLength < MAX_JOB_ID_LENGTH) {
    fastify.log.warn(
      `fleetPlugin: the server's maxParamLength (${maxParamLength}) is below the longest job id Fleet accepts in a path (${MAX_JOB_ID_LENGTH}); set it to ${MAX_JOB_ID_LENGTH} (Fleet's own job ids are 26 characters)`,
    );
  }
  const bodyLimit = o.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const ctx: RouteContext = {
    coordinator,
    authenticate: o.authenticate,
    metrics,
    waiters,
    bodyLimit,
    claimRecheckMs: o.claimRecheckMs ?? DEFAULT_RECHECK_MS,
    maxParkedClaims: o.maxParkedClaims ?? DEFAULT_MAX_PARKED_CLAIMS,
    listPageBytes: o.listPageBytes ?? DEFAULT_LIST_PAGE_BYTES,
  };

  // Long-poll wake-ups: every event that leaves a job of a product queued.
  const unsubscribe = coordinator.subscribe((event) => {
    if (event.data.to === 'queued') waiters.notify(event.productId);
  });
  const unobserve = metrics.observe(coordinator);
  const backups: BackupState = { dir: resolve(o.backupDir ?? tmpdir()), running: new Set() };
  app.addHook('preClose', (done) => {
    waiters.close();
    for (const backup of backups.running) backup.abort(new Error('the server is closing'));
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    unsubscribe();
    unobserve();
    done();
  });

  // Validation by zod (the type provider); responses are plain JSON (schemas document them).
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  // JSON only; an empty body with a JSON content type counts as no body (optional bodies).
  app.removeAllContentTypeParsers();
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text === '') {
      done(null, undefined);
      return;
    }
    parseJson(request, text, (error, body) => {
      // Fastify refuses a forbidden key with the error of broken JSON: say which it is.
      if (error) done(forbiddenKeyError(text) ?? error, undefined);
      else done(null, body);
    });
  });

  app.setErrorHandler((error, request, reply) => {
    const problem = sendProblem(request, reply, error, { bodyLimit });
    if (problem.code === 'FENCED') metrics.recordFenced();
  });
  // Route patterns by method, so a 404 for a wrong method can name the right ones (a
  // 404, not a 405: the contract's codes are a closed table).
  const patterns: { method: string; re: RegExp }[] = [];
  app.addHook('onRoute', (route) => {
    const re = new RegExp(
      `^${route.url
        .split('/')
        .map((seg) => (seg.startsWith(':') ? '[^/]+' : seg === '*' ? '.*' : escapeRegExp(seg)))
        .join('/')}$`,
    );
    for (const method of [route.method].flat())
      if (method !== 'HEAD') patterns.push({ method, re });
  });
  const notFound = (request: FastifyRequest, reply: FastifyReply): void => {
    const path = request.url.split('?')[0] ?? '';
    const allowed = [...new Set(patterns.filter((p) => p.re.test(path)).map((p) => p.method))];
    if (allowed.length > 0) reply.header('Allow', allowed.join(', '));
    sendProblem(request, reply, routeNotFound(request, allowed));
  };
  if (o.notFoundHandler !== false) {
    try {
      app.setNotFoundHandler(notFound);
    } catch {
      fastify.log.debug('fleetPlugin: the host has its own not-found handler; keeping it');
    }
  }

  app.addHook('onResponse', async (request, reply) => {
    // Event streams last as long as the client stays: not a request latency.
    if (request.routeOptions.config?.fleetStream === true) return;
    const route = request.is404 ? 'unmatched' : (request.routeOptions.url ?? 'unmatched');
    metrics.recordRequest(route, request.method, reply.statusCode, reply.elapsedTime / 1000);
  });

  if (o.docs !== false) {
    if (fastify.hasDecorator('swagger')) {
      fastify.log.warn(
        'fleetPlugin: @fastify/swagger is already registered here; not serving /docs',
      );
    } else {
      await registerOpenApi(app);
    }
  }

  registerServiceRoutes(app, ctx, { metricsToken: o.metricsToken });
  const inspector =
    o.inspector === false
      ? null
      : createInspectorContext(app, coordinator, {
          heartbeatMs: o.streamHeartbeatMs ?? 15_000,
          recheckMs: o.streamRecheckMs ?? 2000,
        });
  if (inspector) registerInspectorRoutes(app);
  await app.register(
    async (scope) => {
      const fleet = scope.withTypeProvider<ZodTypeProvider>() as FleetApp;
      fleet.setNotFoundHandler(notFound);
      if (o.rateLimit) await registerRateLimit(fleet, o.rateLimit);
      registerJobRoutes(fleet, ctx);
      registerBatchRoutes(fleet, ctx);
      registerWorkerRoutes(fleet, ctx);
      registerAdminRoutes(fleet, ctx);
      registerBackupRoutes(fleet, ctx, backups);
      registerPruneRoutes(fleet, ctx);
      if (inspector) {
        registerOverviewRoutes(fleet, ctx, inspector);
        await registerStreamRoutes(fleet, ctx, inspector);
      }
    },
    { prefix: '/fleet' },
  );
};

/**
 * The Fleet REST API as a Fastify plugin (see the file header). Register it without
 * `fastify-plugin`: it is meant to stay encapsulated.
 */
export const fleetPlugin: FastifyPluginAsync<FleetPluginOptions> = Object.assign(fleetPluginImpl, {
  [Symbol.for('fastify.display-name')]: 'fleet',
});
