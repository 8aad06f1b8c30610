/**
 * Factory routes (API.md): the atomic claim with long-poll, lease renew and release,
 * progress reports, heartbeats and the factory list. Registered under `/fleet`.
 *
 * Long-poll claim. With `waitMs > 0` and nothing eligible, the request parks in
 * {@link ClaimWaiters} (no busy polling) and tries again when a job of its product is
 * queued (an event of the coordinator), or after the safety re-check interval, until
 * `waitMs` has passed (then `204`). A client that disconnects stops the wait at once;
 * and if its claim had already succeeded when the disconnect is seen, the lease is
 * released at once (reason `client_disconnected`, not counted as a failed attempt), so
 * the job goes back to the queue instead of waiting for its lease to expire.
 *
 * The disconnect is seen on the response's `close` event: since Node 16 the request's
 * own `close` fires as soon as its body has been read, long before the client leaves.
 */
import { type ClaimGrant, FleetError } from '../../runtime/index.js';
import { actingAs, authOf, callerKey, type FleetAuth, guard, mustActAs } from './auth.js';
import { conditionOf } from './conditional.js';
import { leaseWithTtl, mustUnfenced } from './fence.js';
import {
  ClaimBody,
  ClaimView,
  FactoryView,
  factoryView,
  HeartbeatBody,
  IfMatchHeaders,
  JobParams,
  JobView,
  jobView,
  LeaseView,
  NoContent,
  PageQuery,
  ProgressBody,
  pageOf,
  ReleaseBody,
  RenewBody,
  sendJob,
} from './http-schemas.js';
import type { ClaimWaitOutcome } from './metrics.js';
import { AUTH_CODES, type FleetApp, must, problems, type RouteContext } from './route-context.js';

/**
 * Claims for `productId`, waiting up to `waitMs` (real time) for a job to become
 * eligible. Returns the grant, or null when the wait ran out, the client left
 * (`signal`), or the server is closing.
 */
async function claimOrWait(
  ctx: RouteContext,
  caller: FleetAuth,
  input: { factoryId: string; capabilities?: string[] | undefined },
  waitMs: number,
  signal: AbortSignal,
): Promise<ClaimGrant | null> {
  const { productId } = caller;
  const deadline = performance.now() + waitMs;
  let parked = false;
  let release: (() => void) | null = null;
  let outcome: ClaimWaitOutcome = 'timeout';
  try {
    for (;;) {
      const since = ctx.waiters.generation(productId);
      const grant = must(await ctx.coordinator.claimNextJob(productId, input));
      if (grant) {
        outcome = signal.aborted ? 'disconnected' : 'claimed';
        return grant;
      }
      const remaining = deadline - performance.now();
      if (signal.aborted) {
        outcome = 'disconnected';
        return null;
      }
      if (remaining <= 0) return null;
      if (!parked) {
        release = ctx.waiters.reserve(callerKey(caller), ctx.maxParkedClaims);
        if (release === null) throw tooManyParked(ctx);
        parked = true;
        ctx.metrics.claimWaitStarted();
      }
      const woke = await ctx.waiters.wait(
        productId,
        since,
        Math.min(remaining, ctx.claimRecheckMs),
        signal,
      );
      if (woke === 'aborted') {
        outcome = 'disconnected';
        return null;
      }
      if (woke === 'closed') {
        outcome = 'closed';
        return null;
      }
    }
  } finally {
    release?.();
    if (parked) ctx.metrics.claimWaitEnded(outcome);
  }
}

function tooManyParked(ctx: RouteContext): FleetError {
  const retryAfterSeconds = Math.max(1, Math.ceil(ctx.claimRecheckMs / 1000));
  return new FleetError(
    'RATE_LIMITED',
    `this caller already has ${ctx.maxParkedClaims} long-poll claims waiting, the most it may; retry after ${retryAfterSeconds} s, or claim with waitMs 0`,
    { extra: { limit: ctx.maxParkedClaims, retryAfterSeconds } },
  );
}

export function registerWorkerRoutes(app: FleetApp, ctx: RouteContext): void {
  const { coordinator: coord, authenticate, bodyLimit } = ctx;
  const factoryOnly = guard(authenticate, ['factory']);

  app.post(
    '/claim',
    {
      bodyLimit,
      onRequest: factoryOnly,
      schema: {
        operationId: 'claimJob',
        tags: ['leases'],
        summary: 'Atomically claim the best eligible job (long-poll with waitMs)',
        description: [
          'Role **factory**. Among the product’s `queued` jobs past `notBefore` whose capabilities the factory has (from the body, else from its last heartbeat): the highest priority, then the oldest (submission order). The job moves to `assigned` under a new `leaseEpoch` and a run opens. A job is handed out at most once per epoch, however many claims race. A factory at its `seatLimit` gets nothing.',
          '- `200` `{ job, lease, run }`; `lease.ttlMs` is what is left of the lease (time it from when the request was sent);',
          '- `204` when nothing is eligible, after waiting up to `waitMs` (0–30000, default 0) for a job to arrive. The wait is woken by jobs queued through this server at once, and re-checks every ~2 s for jobs queued by other processes.',
          'A client that disconnects while waiting is dropped; a claim that succeeded as it disconnected is released again.',
          'A caller (a token) may have a limited number of long-poll claims waiting at once (64 by default): one more that finds nothing to claim at once → `429 RATE_LIMITED` with `Retry-After`.',
        ].join('\n'),
        body: ClaimBody,
        response: {
          200: ClaimView,
          204: NoContent.describe('Nothing eligible within waitMs.'),
          ...problems(...AUTH_CODES, 'PAYLOAD_TOO_LARGE', 'RATE_LIMITED'),
        },
      },
    },
    async (request, reply) => {
      const caller = authOf(request);
      const { productId } = caller;
      const { waitMs, ...input } = request.body;
      mustActAs(caller, input.factoryId);
      const gone = new AbortController();
      const onClose = (): void => {
        if (!reply.raw.writableEnded) gone.abort();
      };
      reply.raw.on('close', onClose);
      try {
        const grant = await claimOrWait(ctx, caller, input, waitMs, gone.signal);
        if (grant && gone.signal.aborted) {
          // Nobody will work on it: give it back now rather than at lease expiry.
          const released = await coord.releaseLease(productId, grant.job.id, {
            factoryId: input.factoryId,
            leaseEpoch: grant.lease.leaseEpoch,
            reason: 'client_disconnected',
          });
          if (!released.ok) {
            request.log.warn(
              { jobId: grant.job.id, code: released.error.code },
              'could not release the claim of a disconnected client; its lease will expire',
            );
          }
          return reply.code(204).send(null);
        }
        // Shutting down: this connection will not be reused, or the server's close would
        // wait for it (it was busy when the close began, so it is not closed as idle).
        if (ctx.waiters.closed) reply.header('Connection', 'close');
        if (!grant) return reply.code(204).send(null);
        return { job: jobView(grant.job), lease: leaseWithTtl(coord, grant.lease), run: grant.run };
      } finally {
        reply.raw.off('close', onClose);
      }
    },
  );

  app.post(
    '/jobs/:id/lease/renew',
    {
      bodyLimit,
      onRequest: factoryOnly,
      schema: {
        operationId: 'renewLease',
        tags: ['leases'],
        summary: 'Extend the lease (fenced)',
        description:
          'Role **factory**. New expiry = now + `extendMs` (1000–3600000; default: the server’s lease length); the answer has `ttlMs`, what is left of it (renew at about a third of it). A lease past its expiry can still be renewed until the supervisor reaps it; after that the caller is fenced forever: `409 FENCED` with `reason` (what ended its epoch: `reaped`, `released`, `cancelled`, `shipped`...) and the job’s current `leaseEpoch`.',
        params: JobParams,
        headers: IfMatchHeaders,
        body: RenewBody,
        response: {
          200: LeaseView,
          ...problems(...AUTH_CODES, 'NOT_FOUND', 'FENCED', 'PRECONDITION_FAILED'),
        },
      },
    },
    async (request) => {
      const { productId } = actingAs(request);
      const cond = await conditionOf(coord, productId, request);
      const { id } = request.params;
      const r = await coord.renewLease(productId, id, request.body, cond);
      return leaseWithTtl(coord, await mustUnfenced(coord, productId, id, request.body, r));
    },
  );

  app.post(
    '/jobs/:id/lease/release',
    {
      bodyLimit,
      onRequest: factoryOnly,
      schema: {
        operationId: 'releaseLease',
        tags: ['leases'],
        summary: 'Give the job back (fenced)',
        description:
          'Role **factory**. The job returns to `queued` (or `blocked` if its deps are no longer met) with a new epoch and its checkpoint kept. A voluntary release does not count against `retry.max`.',
        params: JobParams,
        headers: IfMatchHeaders,
        body: ReleaseBody,
        response: {
          200: JobView,
          ...problems(
            ...AUTH_CODES,
            'NOT_FOUND',
            'FENCED',
            'INVALID_TRANSITION',
            'PRECONDITION_FAILED',
          ),
        },
      },
    },
    async (request, reply): Promise<JobView> => {
      const { productId } = actingAs(request);
      const cond = await conditionOf(coord, productId, request);
      const { id } = request.params;
      const r = await coord.releaseLease(productId, id, request.body, cond);
      const job = await mustUnfenced(coord, productId, id, request.body, r);
      return sendJob(reply, job);
    },
  );

  app.post(
    '/jobs/:id/progress',
    {
      bodyLimit,
      onRequest: factoryOnly,
      schema: {
        operationId: 'recordProgress',
        tags: ['leases'],
        summary: 'Report checkpoint, insights and artifacts without moving (Fleet addition)',
        description:
          'Role **factory**, fenced like PATCH. `checkpoint` members replace the stored ones; `insights` are increments that accumulate per run and per job (tokens, cost, turns...); `artifacts` are pointers stamped with the current epoch. Insights that exceed the job’s budget send it to `dead_letter` (reason `budget_exceeded`) and fence the holder out. `seq` (optional, 1, 2, 3... per run) makes a retry safe: from the holder, a call whose `seq` is at or below the last one applied in this run answers `200` with the job unchanged and applies nothing.',
        params: JobParams,
        headers: IfMatchHeaders,
        body: ProgressBody,
        response: {
          200: JobView,
          ...problems(
            ...AUTH_CODES,
            'NOT_FOUND',
            'FENCED',
            'INVALID_TRANSITION',
            'PRECONDITION_FAILED',
          ),
        },
      },
    },
    async (request, reply): Promise<JobView> => {
      const { productId } = actingAs(request);
      const cond = await conditionOf(coord, productId, request);
      const { id } = request.params;
      const r = await coord.recordProgress(productId, id, request.body, cond);
      const job = await mustUnfenced(coord, productId, id, request.body, r);
      return sendJob(reply, job);
    },
  );

  app.post(
    '/factories/heartbeat',
    {
      bodyLimit,
      onRequest: factoryOnly,
      schema: {
        operationId: 'heartbeat',
        tags: ['factories'],
        summary: 'Register (first beat) or refresh a factory',
        description:
          'Role **factory**. `seatLimit` caps the leases it may hold at once (`null` removes the cap, omitted keeps the last one); its `capabilities` are used by claims that send none. A factory that misses three beats (`heartbeatIntervalMs`, default 10 s) is `stale`.',
        body: HeartbeatBody,
        response: { 200: FactoryView, ...problems(...AUTH_CODES, 'PAYLOAD_TOO_LARGE') },
      },
    },
    async (request) =>
      factoryView(must(await coord.heartbeat(actingAs(request).productId, request.body))),
  );

  app.get(
    '/factories',
    {
      onRequest: guard(authenticate, 'any'),
      schema: {
        operationId: 'listFactories',
        tags: ['factories'],
        summary: 'The product’s factories, by id, with a derived stale flag',
        description: 'Any role. Paged like every list.',
        querystring: PageQuery,
        response: { 200: pageOf(FactoryView), ...problems(...AUTH_CODES) },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query;
      const page = must(
        await coord.listFactories(authOf(request).productId, { limit, cursor: cursor ?? null }),
      );
      return { items: page.items.map(factoryView), nextCursor: page.nextCursor };
    },
  );
}
