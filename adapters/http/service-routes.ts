/**
 * Service routes, without authentication (like the probes of any service): liveness,
 * readiness (the store answers) and Prometheus metrics — the last behind a bearer token
 * of its own when `metricsToken` is set (`metrics-auth.ts`).
 */
import { z } from 'zod';
import { FleetError } from '../../runtime/index.js';
import { Health, Ready } from './http-schemas.js';
import { PROMETHEUS_MEDIA_TYPE } from './metrics.js';
import { metricsGuard } from './metrics-auth.js';
import { type FleetApp, problems, type RouteContext } from './route-context.js';

/** How long the readiness probe waits for the store, in ms. */
const READY_TIMEOUT_MS = 2000;

/**
 * Registers `/healthz`, `/readyz` and `/metrics` (no auth; `/metrics` needs
 * `metricsToken` when one is given).
 */
export function registerServiceRoutes(
  app: FleetApp,
  ctx: RouteContext,
  options: { metricsToken?: string | undefined } = {},
): void {
  const store = ctx.coordinator.store;
  const { metricsToken } = options;

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

  const what =
    'Jobs by product and stage (`fleet_jobs`: it names every product), claims, fenced rejections, reaped leases, sweeps, long-poll waits and request latency by route (`fleet_http_request_duration_seconds`).';
  app.get(
    '/metrics',
    {
      ...(metricsToken === undefined ? {} : { onRequest: metricsGuard(metricsToken) }),
      schema: {
        operationId: 'metrics',
        tags: ['service'],
        summary: 'Prometheus metrics (text exposition 0.0.4)',
        description:
          metricsToken === undefined
            ? `${what} No authentication on this server (\`FLEET_METRICS_TOKEN\`, the plugin’s \`metricsToken\`, requires one).`
            : `${what} Needs this server’s metrics token (\`FLEET_METRICS_TOKEN\`), not a Fleet token: \`Authorization: Bearer <metrics token>\`; anything else → \`401 UNAUTHENTICATED\`.`,
        security: metricsToken === undefined ? [] : [{ bearerAuth: [] }],
        ...(metricsToken === undefined
          ? {}
          : {
              response: {
                200: {
                  description: 'Prometheus text.',
                  content: { [PROMETHEUS_MEDIA_TYPE]: { schema: z.string() } },
                },
                ...problems('UNAUTHENTICATED'),
              },
            }),
      },
    },
    async (_request, reply) => {
      reply.header('Cache-Control', 'no-store').type(PROMETHEUS_MEDIA_TYPE);
      return ctx.metrics.render();
    },
  );
}
