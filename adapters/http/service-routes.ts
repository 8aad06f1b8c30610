/**
 * Service routes, without authentication (like the probes of any service): liveness,
 * readiness (the store answers) and Prometheus metrics.
 */
import { FleetError } from '../../runtime/index.js';
import { Health, Ready } from './http-schemas.js';
import { PROMETHEUS_MEDIA_TYPE } from './metrics.js';
import { type FleetApp, problems, type RouteContext } from './route-context.js';

/** How long the readiness probe waits for the store, in ms. */
const READY_TIMEOUT_MS = 2000;

export function registerServiceRoutes(app: FleetApp, ctx: RouteContext): void {
  const store = ctx.coordinator.store;

  app.get(
    '/healthz',
    {
      schema: {
        operationId: 'healthz',
        tags: ['service'],
        summary: 'Liveness: the process answers',
        security: [],
        response: { 200: Health },
      },
    },
    async (_request, reply) => {
      reply.header('Cache-Control', 'no-store');
      return { status: 'ok' as const };
    },
  );

  app.get(
    '/readyz',
    {
      schema: {
        operationId: 'readyz',
        tags: ['service'],
        summary: 'Readiness: the store answers',
        description: `\`503 STORE_UNAVAILABLE\` when the store does not answer within ${READY_TIMEOUT_MS} ms.`,
        security: [],
        response: { 200: Ready, ...problems() },
      },
    },
    async (request, reply) => {
      reply.header('Cache-Control', 'no-store');
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          store.ping(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`store ping took over ${READY_TIMEOUT_MS} ms`)),
              READY_TIMEOUT_MS,
            );
          }),
        ]);
      } catch (e) {
        request.log.warn({ err: e }, 'readiness: the store did not answer');
        throw new FleetError('STORE_UNAVAILABLE', 'the store did not answer', { cause: e });
      } finally {
        clearTimeout(timer);
      }
      return { status: 'ready' as const, store: store.kind };
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        operationId: 'metrics',
        tags: ['service'],
        summary: 'Prometheus metrics (text exposition 0.0.4)',
        description:
          'Jobs by product and stage (`fleet_jobs`), claims, fenced rejections, reaped leases, sweeps, long-poll waits and request latency by route (`fleet_http_request_duration_seconds`).',
        security: [],
      },
    },
    async (_request, reply) => {
      reply.header('Cache-Control', 'no-store').type(PROMETHEUS_MEDIA_TYPE);
      return ctx.metrics.render();
    },
  );
}
