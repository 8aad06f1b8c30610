/**
 * `GET /fleet/stream`: live Server-Sent Events for the inspector (and any client).
 *
 * - `GET /fleet/stream?job=ID` — one job's events, each `event: job-event` with
 *   `id: <seq>` and the event as in `GET /fleet/jobs/:id/events`; after each batch an
 *   `event: job` with the job as `GET /fleet/jobs/:id` returns it. Events come from the
 *   store (`followJobEvents`): a `Last-Event-ID` header resumes after that seq, so a
 *   reconnect misses nothing and events stored by other processes arrive too (the
 *   store is re-read every few seconds; this process's own events wake it at once).
 * - `GET /fleet/stream` — the caller's product: `event: job-event` per event this
 *   process stores (a summary, `id: <boot>-<n>`), for overviews and lists to refresh.
 *   A `Last-Event-ID` of this process replays what it still holds; otherwise the first
 *   message is `event: reset` (refetch your view).
 *
 * Both send an `event: ready` first, a comment line as heartbeat, and end when the
 * server closes. They need `Accept: text/event-stream` (else `400 VALIDATION`); 401,
 * 404 (another product's job too) and 400 answer as problem documents before any
 * event is sent. Streams are left out of the request latency histogram (they last
 * until the client leaves).
 */
import fastifySseModule, { type SSEPluginOptions } from '@fastify/sse';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { FleetError, followJobEvents } from '../../runtime/index.js';
import { authOf, guard } from './auth.js';
import { EventView, jobView } from './http-schemas.js';
import type { InspectorContext } from './inspector-context.js';
import { StreamHeaders, StreamQuery } from './inspector-schemas.js';
import { AUTH_CODES, type FleetApp, must, problems, type RouteContext } from './route-context.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A long-lived stream: left out of the request latency histogram. */
    fleetStream?: boolean;
  }
}

// The package is CommonJS (`module.exports = plugin`); its types declare a default export.
const fastifySse = fastifySseModule as unknown as FastifyPluginAsync<SSEPluginOptions>;

/** What the pre-handler decided, for the handler (which runs inside the SSE wrapper). */
interface StreamPlan {
  productId: string;
  /** A job stream: its id and the seq to resume after. */
  job: { id: string; afterSeq: number } | null;
  /** A product stream: the feed position to resume after, or null (start fresh). */
  resumeFeed: number | null;
}

const plans = new WeakMap<FastifyRequest, StreamPlan>();

/** The route config flag that keeps a route out of the latency histogram. */
export const STREAM_ROUTE_CONFIG = { fleetStream: true } as const;

export async function registerStreamRoutes(
  app: FleetApp,
  ctx: RouteContext,
  inspector: InspectorContext,
): Promise<void> {
  const { coordinator: coord } = ctx;
  await app.register(async (scope) => {
    await scope.register(fastifySse, { heartbeatInterval: inspector.timings.heartbeatMs });
    const s = scope as unknown as FleetApp;

    s.get(
      '/stream',
      {
        sse: true,
        config: STREAM_ROUTE_CONFIG,
        onRequest: guard(ctx.authenticate, 'any'),
        schema: {
          operationId: 'stream',
          tags: ['inspector'],
          summary: 'Live events as Server-Sent Events (Fleet addition)',
          description: [
            'Any role. Send `Accept: text/event-stream`; read it with a streaming HTTP client (the inspector uses `fetch`, so the bearer token travels in the header, never in the URL).',
            '- `?job=ID`: that job’s events (`event: job-event`, `id:` = seq, data = the event as in `GET /fleet/jobs/{id}/events`), then `event: job` with the job after each batch. From the store: `Last-Event-ID: <seq>` resumes after that seq, so a reconnect misses nothing; events written by other processes arrive within a few seconds.',
            '- no `job`: the product’s events as this server process stores them (`event: job-event`, data = an ActivityEvent). With a `Last-Event-ID` this process no longer holds, the first message is `event: reset`: refetch the view.',
            'Every stream starts with `event: ready`, sends a comment line as heartbeat, and ends when the server shuts down. Errors before the first event are problem documents.',
          ].join('\n'),
          querystring: StreamQuery,
          headers: StreamHeaders,
          response: {
            200: {
              description: 'An event stream (text/event-stream).',
              content: { 'text/event-stream': { schema: z.string() } },
            },
            ...problems(...AUTH_CODES, 'NOT_FOUND'),
          },
        },
        // Checks run here, before the SSE wrapper opens the stream, so failures are
        // ordinary problem documents.
        preHandler: async (request: FastifyRequest) => {
          const accept = request.headers.accept ?? '';
          if (!accept.includes('text/event-stream')) {
            throw new FleetError(
              'VALIDATION',
              'this route streams Server-Sent Events: send Accept: text/event-stream',
            );
          }
          const { productId } = authOf(request);
          const query = request.query as { job?: string };
          const lastId = request.headers['last-event-id'];
          const last = typeof lastId === 'string' ? lastId.trim() : '';
          if (query.job !== undefined) {
            must(await coord.getJob(productId, query.job));
            let afterSeq = 0;
            if (last !== '') {
              if (!/^\d{1,15}$/.test(last)) {
                throw new FleetError(
                  'VALIDATION',
                  'Last-Event-ID: a job stream resumes after an event seq (a whole number)',
                );
              }
              afterSeq = Number(last);
            }
            plans.set(request, { productId, job: { id: query.job, afterSeq }, resumeFeed: null });
            return;
          }
          const m = /^([A-Za-z0-9_-]+)-(\d{1,15})$/.exec(last);
          const resumeFeed = m && m[1] === inspector.bootId ? Number(m[2]) : null;
          plans.set(request, { productId, job: null, resumeFeed: last === '' ? -1 : resumeFeed });
        },
      },
      async (request, reply) => {
        const plan = plans.get(request)!;
        reply.sse.keepAlive();
        reply.sse.sendHeaders();
        if (plan.job) startJobStream(reply, plan.productId, plan.job, request);
        else startProductStream(reply, plan);
      },
    );

    function startJobStream(
      reply: FastifyReply,
      productId: string,
      job: { id: string; afterSeq: number },
      request: FastifyRequest,
    ): void {
      const abort = new AbortController();
      const untrack = inspector.track(() => {
        abort.abort();
        reply.sse.close();
      });
      reply.sse.onClose(() => {
        abort.abort();
        untrack();
      });
      void (async () => {
        try {
          await reply.sse.send({ event: 'ready', data: { job: job.id, afterSeq: job.afterSeq } });
          for await (const batch of followJobEvents(coord, productId, job.id, {
            afterSeq: job.afterSeq,
            signal: abort.signal,
            recheckMs: inspector.timings.recheckMs,
          })) {
            for (const e of batch) {
              if (!reply.sse.isConnected) return;
              await reply.sse.send({
                id: String(e.seq),
                event: 'job-event',
                data: EventView.parse(e),
              });
            }
            const current = await coord.getJob(productId, job.id);
            if (current.ok && reply.sse.isConnected) {
              await reply.sse.send({ event: 'job', data: jobView(current.value) });
            }
          }
        } catch (e) {
          request.log.warn({ err: e }, 'job stream failed; closing it');
        } finally {
          untrack();
          reply.sse.close();
        }
      })();
    }

    function startProductStream(reply: FastifyReply, plan: StreamPlan): void {
      const { activity, bootId } = inspector;
      const id = (n: number): string => `${bootId}-${n}`;
      // Events recorded while the replay is written wait in `pending`, in order.
      let pending: Parameters<Parameters<typeof activity.onEvent>[0]>[0][] | null = [];
      let last = activity.lastFeedSeq;
      const stop = activity.onEvent((e) => {
        if (e.productId !== plan.productId) return;
        if (pending) pending.push(e);
        else void send(e);
      });
      const untrack = inspector.track(() => reply.sse.close());
      reply.sse.onClose(() => {
        stop();
        untrack();
      });
      const send = async (e: { feedSeq: number }): Promise<void> => {
        if (!reply.sse.isConnected || e.feedSeq <= last) return;
        last = e.feedSeq;
        await reply.sse.send({ id: id(e.feedSeq), event: 'job-event', data: e }).catch(() => {});
      };
      void (async () => {
        await reply.sse.send({ event: 'ready', data: { product: plan.productId, id: id(last) } });
        if (plan.resumeFeed !== -1) {
          const replay =
            plan.resumeFeed === null ? null : activity.after(plan.productId, plan.resumeFeed);
          if (replay === null) await reply.sse.send({ event: 'reset', data: { id: id(last) } });
          else {
            last = plan.resumeFeed!;
            for (const e of replay) await send(e);
          }
        }
        const queued = pending ?? [];
        pending = null;
        for (const e of queued) await send(e);
      })().catch(() => reply.sse.close());
    }
  });
}
