/**
 * Job routes (API.md "Jobs"): submit, list, read, the fenced PATCH, and a job's runs,
 * events and artifacts. Registered under `/fleet`. Every route acts on the caller's
 * product only: another product's job answers 404, exactly like a missing one.
 */
import { z } from 'zod';
import { actingAs, authOf, guard } from './auth.js';
import { conditionOf, noneMatch } from './conditional.js';
import { mustUnfenced } from './fence.js';
import {
  ArtifactView,
  artifactView,
  EventsQuery,
  EventView,
  IfMatchHeaders,
  IfNoneMatchHeaders,
  JobParams,
  JobSummaryView,
  JobView,
  jobSummaryView,
  jobView,
  ListJobsQuery,
  NoContent,
  PageQuery,
  PatchBody,
  pageOf,
  RunView,
  runView,
  SubmitBody,
  sendJob,
} from './http-schemas.js';
import {
  AUTH_CODES,
  DEFAULT_LIST_PAGE_BYTES,
  type FleetApp,
  must,
  problems,
  type RouteContext,
} from './route-context.js';

export function registerJobRoutes(app: FleetApp, ctx: RouteContext): void {
  const { coordinator: coord, authenticate } = ctx;
  const bodyLimit = ctx.bodyLimit;
  const anyRole = guard(authenticate, 'any');

  app.post(
    '/jobs',
    {
      bodyLimit,
      onRequest: guard(authenticate, ['submitter']),
      schema: {
        operationId: 'submitJob',
        tags: ['jobs'],
        summary: 'Submit a job (idempotent on idempotencyKey)',
        description: [
          'Role **submitter**. Idempotent on `(product, idempotencyKey)`; content is every field but the key, compared canonically.',
          '- new key → `201`, `Fleet-Idempotency: created`, `Location` of the job;',
          '- same content → `200`, the existing job, `Fleet-Idempotency: existing`;',
          '- different content while the job is `queued`/`blocked` → `200`, the job with the new content and `version` + 1, `Fleet-Idempotency: superseded`;',
          '- different content after that → `409 IDEMPOTENCY_CONFLICT`.',
          'A job with unmet deps starts `blocked`, otherwise `queued`.',
        ].join('\n'),
        body: SubmitBody,
        response: {
          200: JobView.describe('Existing or superseded job (see Fleet-Idempotency).'),
          201: JobView.describe('Created.'),
          ...problems(
            ...AUTH_CODES,
            'IDEMPOTENCY_CONFLICT',
            'DEPENDENCY_CYCLE',
            'UNKNOWN_DEPENDENCY',
            'PAYLOAD_TOO_LARGE',
          ),
        },
      },
    },
    async (request, reply): Promise<JobView> => {
      const auth = authOf(request);
      const { job, outcome } = must(
        await coord.submit(auth.productId, request.body, auth.subject ?? null),
      );
      reply.header('Fleet-Idempotency', outcome).header('ETag', job._etag);
      if (outcome === 'created') {
        reply.code(201).header('Location', `${app.prefix}/jobs/${encodeURIComponent(job.id)}`);
      }
      return jobView(job);
    },
  );

  app.get(
    '/jobs',
    {
      onRequest: anyRole,
      schema: {
        operationId: 'listJobs',
        tags: ['jobs'],
        summary: 'List the product’s jobs, newest first (summaries unless view=full)',
        description: [
          'Any role. Newest first (submission order), optionally of one stage. Page with `limit` (1–500, default 50) and the previous page’s `nextCursor`; the last page has `nextCursor: null`.',
          '`view=summary` (the default) lists each job without `bodyMd` and `manifestSnapshot` (read one job for those); `view=full` lists whole jobs.',
          `A page also ends early once its jobs reach the server’s byte budget (default ${DEFAULT_LIST_PAGE_BYTES / 1024 ** 2} MiB, measured on the stored jobs), so a page may hold fewer than \`limit\` jobs while \`nextCursor\` is not null: follow it until null. A page always holds at least one job, so a job larger than the budget comes alone on its page.`,
        ].join('\n'),
        querystring: ListJobsQuery,
        response: { 200: pageOf(z.union([JobSummaryView, JobView])), ...problems(...AUTH_CODES) },
      },
    },
    async (request) => {
      const { stage, limit, cursor, view } = request.query;
      const q = {
        limit,
        cursor: cursor ?? null,
        maxBytes: ctx.listPageBytes,
        ...(stage ? { stage } : {}),
      };
      const productId = authOf(request).productId;
      if (view === 'full') {
        const page = must(await coord.listJobs(productId, { ...q, view: 'full' }));
        return { items: page.items.map(jobView), nextCursor: page.nextCursor };
      }
      const page = must(await coord.listJobs(productId, { ...q, view: 'summary' }));
      return { items: page.items.map(jobSummaryView), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/jobs/:id',
    {
      onRequest: anyRole,
      schema: {
        operationId: 'getJob',
        tags: ['jobs'],
        summary: 'Read one job (with ETag)',
        description:
          'Any role. The `ETag` header is the job’s version, for `If-Match` on mutations. With `If-None-Match` naming the current ETag the answer is `304` without a body.',
        params: JobParams,
        headers: IfNoneMatchHeaders,
        response: {
          200: JobView,
          304: NoContent.describe('Not modified.'),
          ...problems(...AUTH_CODES, 'NOT_FOUND'),
        },
      },
    },
    async (request, reply) => {
      const job = must(await coord.getJob(authOf(request).productId, request.params.id));
      reply.header('ETag', job._etag).header('Cache-Control', 'no-cache');
      if (noneMatch(request.headers['if-none-match'], job._etag)) {
        return reply.code(304).send(null);
      }
      return jobView(job);
    },
  );

  app.patch(
    '/jobs/:id',
    {
      bodyLimit,
      onRequest: guard(authenticate, ['factory']),
      schema: {
        operationId: 'transitionJob',
        tags: ['jobs'],
        summary: 'Fenced stage move by the lease holder',
        description: [
          'Role **factory**. `assigned → building → review → testing → shipped` in order; review and testing may send work back to `building`; `failed` from any of them.',
          'Fencing is checked first: a `leaseEpoch` other than the job’s, or a `factoryId` other than the holder → `409 FENCED`, whose `reason` says what ended the caller’s epoch (`reaped`, `released`, `cancelled`, `shipped`, `failed`...: a retried `shipped` that was applied meets `reason: "shipped"`) beside the job’s current `leaseEpoch`. Then the lifecycle: a move it does not allow → `409 INVALID_TRANSITION`. Either way nothing changes.',
          '`to: "failed"` ends the attempt: with retries left and `error.class` in `retry.on` the job waits in `failed` until `notBefore`, else `dead_letter`.',
          'Checkpoint, insights (increments) and artifacts sent with the move are applied with it or not at all.',
          '`If-Match` makes the write conditional on the job’s ETag (atomically) → `412 PRECONDITION_FAILED` when stale.',
        ].join('\n'),
        params: JobParams,
        headers: IfMatchHeaders,
        body: PatchBody,
        response: {
          200: JobView,
          ...problems(
            ...AUTH_CODES,
            'NOT_FOUND',
            'FENCED',
            'INVALID_TRANSITION',
            'PRECONDITION_FAILED',
            'PAYLOAD_TOO_LARGE',
          ),
        },
      },
    },
    async (request, reply): Promise<JobView> => {
      const { productId } = actingAs(request);
      const cond = await conditionOf(coord, productId, request);
      const { id } = request.params;
      const r = await coord.transition(productId, id, request.body, cond);
      const job = await mustUnfenced(coord, productId, id, request.body, r);
      return sendJob(reply, job);
    },
  );

  app.get(
    '/jobs/:id/runs',
    {
      onRequest: anyRole,
      schema: {
        operationId: 'listRuns',
        tags: ['jobs'],
        summary: 'The job’s runs (one per claim), in attempt order',
        description: 'Any role. Paged like every list.',
        params: JobParams,
        querystring: PageQuery,
        response: { 200: pageOf(RunView), ...problems(...AUTH_CODES, 'NOT_FOUND') },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query;
      const page = must(
        await coord.listRuns(authOf(request).productId, request.params.id, {
          limit,
          cursor: cursor ?? null,
        }),
      );
      return { items: page.items.map(runView), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/jobs/:id/events',
    {
      onRequest: anyRole,
      schema: {
        operationId: 'listEvents',
        tags: ['jobs'],
        summary: 'The job’s append-only event stream, in seq order',
        description:
          'Any role. `seq` is 1, 2, 3... with no gap. Paged: `nextCursor` is the last `seq` seen, so a reader can also resume from any seq it has.',
        params: JobParams,
        querystring: EventsQuery,
        response: { 200: pageOf(EventView), ...problems(...AUTH_CODES, 'NOT_FOUND') },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query;
      return must(
        await coord.listEvents(authOf(request).productId, request.params.id, {
          limit,
          cursor: cursor ?? null,
        }),
      );
    },
  );

  app.get(
    '/jobs/:id/artifacts',
    {
      onRequest: anyRole,
      schema: {
        operationId: 'listArtifacts',
        tags: ['jobs'],
        summary: 'The job’s artifact pointers (Fleet addition)',
        description:
          'Any role. Pointers recorded with PATCH or progress calls, in creation order, each stamped with the lease epoch that wrote it. Paged.',
        params: JobParams,
        querystring: PageQuery,
        response: { 200: pageOf(ArtifactView), ...problems(...AUTH_CODES, 'NOT_FOUND') },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query;
      const page = must(
        await coord.listArtifacts(authOf(request).productId, request.params.id, {
          limit,
          cursor: cursor ?? null,
        }),
      );
      return { items: page.items.map(artifactView), nextCursor: page.nextCursor };
    },
  );
}
