/**
 * `GET /fleet/overview` (the product at a glance, for the inspector's overview) and
 * `GET /fleet/me` (who the credentials belong to, so a page can offer admin actions only
 * to admins). Any role; the product comes from the credentials, as everywhere.
 */
import type { z } from 'zod';
import { productOverview } from '../../runtime/index.js';
import { authOf, guard } from './auth.js';
import type { InspectorContext } from './inspector-context.js';
import { MeView, OverviewView } from './inspector-schemas.js';
import { AUTH_CODES, type FleetApp, problems, type RouteContext } from './route-context.js';

export function registerOverviewRoutes(
  app: FleetApp,
  ctx: RouteContext,
  inspector: InspectorContext,
): void {
  const anyRole = guard(ctx.authenticate, 'any');

  app.get(
    '/overview',
    {
      onRequest: anyRole,
      schema: {
        operationId: 'getOverview',
        tags: ['inspector'],
        summary: 'The product at a glance (Fleet addition)',
        description: [
          'Any role. Jobs by stage (every stage, zeros included) and factories with their status from the heartbeat age (`ok`; `stale` after 3 missed beats; `lost` after 30), load and seats held — both read from the store.',
          'Plus claims and ships per minute over the last hour and the latest events, newest first, as counted by the server process that answers (each process of a multi-process deployment counts the events it stored).',
        ].join('\n'),
        response: { 200: OverviewView, ...problems(...AUTH_CODES) },
      },
    },
    async (request, reply) => {
      reply.header('Cache-Control', 'no-store');
      const overview = await productOverview(
        ctx.coordinator,
        inspector.activity,
        authOf(request).productId,
      );
      // The runtime's view is deeply readonly; the response schema is the same shape.
      return overview as unknown as z.output<typeof OverviewView>;
    },
  );

  app.get(
    '/me',
    {
      onRequest: anyRole,
      schema: {
        operationId: 'getCaller',
        tags: ['inspector'],
        summary: 'Who the credentials belong to (Fleet addition)',
        description: 'Any role. The product, roles and subject of the caller.',
        response: { 200: MeView, ...problems(...AUTH_CODES) },
      },
    },
    async (request, reply) => {
      reply.header('Cache-Control', 'no-store');
      const auth = authOf(request);
      return { productId: auth.productId, roles: [...auth.roles], subject: auth.subject ?? null };
    },
  );
}
