/**
 * The inspector's pages and files, under `/inspector` of the plugin's prefix:
 * `/inspector` (overview), `/inspector/jobs`, `/inspector/jobs/:id`,
 * `/inspector/machines/:name` (page), `/inspector/machines/:name.svg` (the raw chart),
 * `/inspector/assets/*`. No authentication: they hold no product data (each page's
 * script reads the API with the user's token). Every answer carries a strict
 * Content-Security-Policy: scripts, styles and connections from this origin only,
 * nothing inline, no frames.
 */
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { FleetError } from '../../runtime/index.js';
import {
  inspectorAssets,
  isMachineName,
  jobPage,
  jobsPage,
  machineChart,
  machinePage,
  overviewPage,
} from '../ui/index.js';
import type { FleetApp } from './route-context.js';

/** The Content-Security-Policy of every inspector response. */
export const INSPECTOR_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const HTML = 'text/html; charset=utf-8';

function secure(reply: FastifyReply): FastifyReply {
  return reply
    .header('Content-Security-Policy', INSPECTOR_CSP)
    .header('X-Content-Type-Options', 'nosniff')
    .header('Referrer-Policy', 'no-referrer')
    .header('Cross-Origin-Opener-Policy', 'same-origin');
}

const page = (summary: string, description: string) => ({
  tags: ['inspector'],
  summary,
  description,
  security: [],
  response: {
    200: {
      description: 'An HTML page (no data: its script reads the API with the user’s token).',
      content: { 'text/html': { schema: z.string() } },
    },
  },
});

/** Registers the inspector's routes on `app` (the plugin's root scope). */
export function registerInspectorRoutes(app: FleetApp): void {
  const base = app.prefix === '/' ? '' : app.prefix;
  // Rendered once: pages depend only on the base path and the machines.
  const pages = {
    overview: overviewPage({ base }),
    jobs: jobsPage({ base }),
    job: jobPage({ base }),
  };
  const sendPage = (reply: FastifyReply, html: string): string => {
    secure(reply).type(HTML).header('Cache-Control', 'no-cache');
    return html;
  };

  app.get(
    '/inspector',
    {
      schema: {
        operationId: 'inspectorOverview',
        ...page(
          'Inspector: overview page',
          'The job machine with live counts per state, stages, throughput, factories, recent events.',
        ),
      },
    },
    async (_request, reply) => sendPage(reply, pages.overview),
  );

  app.get(
    '/inspector/jobs',
    {
      schema: {
        operationId: 'inspectorJobs',
        ...page(
          'Inspector: job list page',
          'Filters live in the URL: `stage`, `q` (id, key or title on the page), `cursor`.',
        ),
        querystring: z.looseObject({}),
      },
    },
    async (_request, reply) => sendPage(reply, pages.jobs),
  );

  app.get(
    '/inspector/jobs/:id',
    {
      schema: {
        operationId: 'inspectorJob',
        ...page(
          'Inspector: job page',
          'One job: header, its path through the job machine (live), step scrubber, events, runs, checkpoint, artifacts, deps; requeue and cancel for admins.',
        ),
        params: z.strictObject({ id: z.string().min(1).max(200) }),
      },
    },
    async (_request, reply) => sendPage(reply, pages.job),
  );

  app.get(
    '/inspector/machines/:name',
    {
      schema: {
        operationId: 'inspectorMachine',
        tags: ['inspector'],
        summary: 'Inspector: a state machine (page, or raw SVG with `.svg`)',
        description:
          '`job` or `supervisor`: the machine’s page. `job.svg`, `supervisor.svg`: the chart alone (`image/svg+xml`), generated from the machine definition; its elements carry `data-state` and `data-edge="from->to"`. Unknown names → 404.',
        security: [],
        params: z.strictObject({ name: z.string().min(1).max(100) }),
        response: {
          200: {
            description: 'The page (text/html) or the chart (image/svg+xml).',
            content: {
              'text/html': { schema: z.string() },
              'image/svg+xml': { schema: z.string() },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      const svg = name.endsWith('.svg');
      const machine = svg ? name.slice(0, -4) : name;
      if (!isMachineName(machine)) throw new FleetError('NOT_FOUND', `no machine ${machine}`);
      if (!svg) return sendPage(reply, machinePage({ base }, machine));
      secure(reply).type('image/svg+xml').header('Cache-Control', 'no-cache');
      return `<?xml version="1.0" encoding="UTF-8"?>\n${machineChart(machine).svg}\n`;
    },
  );

  app.get(
    '/inspector/assets/*',
    {
      schema: {
        operationId: 'inspectorAsset',
        tags: ['inspector'],
        summary: 'Inspector: stylesheet, scripts, icon',
        security: [],
        response: {
          200: {
            description: 'The file.',
            content: { 'text/javascript': { schema: z.string() } },
          },
          304: z.null().describe('Not modified (If-None-Match).'),
        },
      },
    },
    async (request, reply) => {
      const name = (request.params as { '*': string })['*'];
      const file = inspectorAssets().get(name);
      if (file === undefined) throw new FleetError('NOT_FOUND', `no inspector asset ${name}`);
      secure(reply)
        .type(file.contentType)
        .header('ETag', file.etag)
        .header('Cache-Control', 'no-cache');
      if (request.headers['if-none-match'] === file.etag) return reply.code(304).send(null);
      // Bytes, sent as they are (the schema documents the text they hold).
      return file.body as unknown as string;
    },
  );
}
