/**
 * Admin routes (API.md "Admin"): requeue and cancel. Role `admin`. Registered under
 * `/fleet`.
 */
import { authOf, guard } from './auth.js';
import { conditionOf } from './conditional.js';
import {
  CancelBody,
  IfMatchHeaders,
  JobParams,
  JobView,
  RequeueBody,
  sendJob,
} from './http-schemas.js';
import { AUTH_CODES, type FleetApp, must, problems, type RouteContext } from './route-context.js';

export function registerAdminRoutes(app: FleetApp, ctx: RouteContext): void {
  const { coordinator: coord, bodyLimit } = ctx;
  const adminOnly = guard(ctx.authenticate, ['admin']);
  const errors = problems(
    ...AUTH_CODES,
    'NOT_FOUND',
    'INVALID_TRANSITION',
    'PRECONDITION_FAILED',
    'PAYLOAD_TOO_LARGE',
  );

  app.post(
    '/jobs/:id/requeue',
    {
      bodyLimit,
      onRequest: adminOnly,
      schema: {
        operationId: 'requeueJob',
        tags: ['admin'],
        summary: 'Put a dead-lettered or failed job back in the queue',
        description:
          'Role **admin**. `dead_letter` or `failed` → `queued` (or `blocked` if its deps are unmet): attempts, failures and budget usage reset. Any other stage → `409 INVALID_TRANSITION`. No body (or `{}`).',
        params: JobParams,
        headers: IfMatchHeaders,
        body: RequeueBody,
        response: { 200: JobView, ...errors },
      },
    },
    async (request, reply): Promise<JobView> => {
      const auth = authOf(request);
      const cond = await conditionOf(coord, auth.productId, request);
      const job = must(
        await coord.requeue(auth.productId, request.params.id, auth.subject ?? 'admin', cond),
      );
      return sendJob(reply, job);
    },
  );

  app.post(
    '/jobs/:id/cancel',
    {
      bodyLimit,
      onRequest: adminOnly,
      schema: {
        operationId: 'cancelJob',
        tags: ['admin'],
        summary: 'Cancel a job',
        description:
          'Role **admin**. Any non-terminal stage → `dead_letter` (reason `cancelled`); bumps `leaseEpoch`, so a factory working on it is fenced out. A `shipped` or `dead_letter` job → `409 INVALID_TRANSITION`. Body optional: `{ "reason" }`, recorded on the event.',
        params: JobParams,
        headers: IfMatchHeaders,
        body: CancelBody,
        response: { 200: JobView, ...errors },
      },
    },
    async (request, reply): Promise<JobView> => {
      const auth = authOf(request);
      const cond = await conditionOf(coord, auth.productId, request);
      const job = must(
        await coord.cancel(
          auth.productId,
          request.params.id,
          request.body?.reason ?? null,
          auth.subject ?? 'admin',
          cond,
        ),
      );
      return sendJob(reply, job);
    },
  );
}
