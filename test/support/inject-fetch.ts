/**
 * A `fetch` that hands each request to a Fastify app (`app.inject`), for client tests
 * without a socket: every request the client makes is recorded, and a test may lose the
 * answer of requests it picks (thrown as a connection reset after the app applied them).
 */
import type { FastifyInstance } from 'fastify';

/** A request as the app received it. */
export interface SentRequest {
  method: string;
  path: string;
  search: string;
  headers: Record<string, string>;
  body: Record<string, unknown> | null;
}

/** A fetch over `app.inject`; `lose` picks requests whose answer is lost after applying. */
export function injectFetch(
  app: FastifyInstance,
  log: SentRequest[] = [],
  lose: (req: SentRequest) => boolean = () => false,
): typeof fetch {
  return async (input, init) => {
    const url = new URL(String(input));
    const body = typeof init?.body === 'string' ? init.body : undefined;
    const headers = { ...(init?.headers as Record<string, string> | undefined) };
    const req: SentRequest = {
      method: init?.method ?? 'GET',
      path: url.pathname,
      search: url.search,
      headers,
      body: body ? (JSON.parse(body) as Record<string, unknown>) : null,
    };
    log.push(req);
    const res = await app.inject({
      method: req.method as 'GET',
      url: url.pathname + url.search,
      headers,
      ...(body !== undefined ? { payload: body } : {}),
    });
    if (lose(req)) {
      const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
      throw new TypeError('fetch failed', { cause: reset });
    }
    const out = new Headers();
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out.set(k, String(v));
    return new Response(res.statusCode === 204 || res.statusCode === 304 ? null : res.rawPayload, {
      status: res.statusCode,
      headers: out,
    });
  };
}
