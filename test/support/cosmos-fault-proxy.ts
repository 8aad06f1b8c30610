/**
 * A Cosmos DB test server behind a fault-injecting reverse proxy, both on 127.0.0.1 in
 * this process, for tests of a store's behaviour when requests are throttled, lost or
 * slow.
 *
 * The server is `@vercel/cosmosdb-server` on plain HTTP (`createHttpServer`), so the
 * proxy sees every request as it is; `@azure/cosmos` 4 accepts an `http://` endpoint
 * (it then uses its plain-HTTP agent), so a store opened on {@link FaultyCosmos.endpoint}
 * talks to the server only through the proxy, and one opened on
 * {@link FaultyCosmos.directEndpoint} (another writer, a checker) bypasses it.
 *
 * A test scripts faults with {@link CosmosFaultProxy.inject}: the next `times` requests
 * that match a predicate (method, path, query or not; see {@link documentWrites}) get
 * the fault instead of plain forwarding:
 *
 * - `throttle`: answered 429 with `x-ms-retry-after-ms` and a Cosmos-style JSON body,
 *   not forwarded;
 * - `dropAfterApply`: forwarded, the server's answer read in full (the server has applied
 *   the request), an optional hook run, then the client's socket destroyed instead of
 *   answering (the outcome is unknown to the client);
 * - `drop`: the client's socket destroyed without forwarding (not applied);
 * - `delay`: forwarded after `ms`, and forwarded even if the client gave up meanwhile
 *   (a late request that still lands);
 * - `hang`: neither forwarded nor answered (the client's own timeout fires).
 *
 * Every request is recorded ({@link CosmosFaultProxy.requests}) with its arrival time
 * (`performance.now()` and `Date.now()`, taken when its headers arrived), the fault it
 * got and, when forwarded, the server's status, so a test can check what reached the
 * server, how often, and when.
 */
import { randomUUID } from 'node:crypto';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createHttpServer } from '@vercel/cosmosdb-server';

/** What a matched request gets instead of plain forwarding. */
export type Fault =
  | { kind: 'throttle'; retryAfterMs: number }
  | {
      kind: 'dropAfterApply';
      /** Runs after the server answered and before the client's socket is destroyed. */
      beforeDrop?: (request: ProxiedRequest) => void | Promise<void>;
    }
  | { kind: 'drop' }
  /** Forwarded; the server's status, headers and half its body sent, then the socket destroyed. */
  | { kind: 'cutAfterApply' }
  | { kind: 'delay'; ms: number }
  | { kind: 'hang' };

export type FaultKind = Fault['kind'];

/** One request the proxy received. */
export interface ProxiedRequest {
  /** 1, 2, 3... in arrival order. */
  n: number;
  method: string;
  /** The URL path (no query string), as sent. */
  path: string;
  headers: IncomingHttpHeaders;
  /**
   * True for a query or a query-plan request: a POST to `.../docs` with
   * `x-ms-documentdb-isquery` or a `application/query+json` body (a document create is
   * the other POST to `.../docs`).
   */
  isQuery: boolean;
  /** `performance.now()` when its headers arrived. */
  at: number;
  /** `Date.now()` when its headers arrived. */
  wallAt: number;
  /** The fault it got, or null when it was plainly forwarded. */
  fault: FaultKind | null;
  /** True once it was sent on to the server. */
  forwarded: boolean;
  /** The server's status, once the server answered it. */
  upstreamStatus: number | null;
}

export type RequestMatcher = (request: ProxiedRequest) => boolean;

/** A scripted fault: applies to the next `remaining` matching requests. */
export interface FaultRule {
  readonly fault: Fault;
  /** Matching requests still to get the fault (Infinity: until healed). */
  remaining: number;
  /** The requests that got it. */
  readonly hits: ProxiedRequest[];
}

export interface CosmosFaultProxy {
  /** `http://127.0.0.1:<port>` of the proxy. */
  readonly endpoint: string;
  /** Every request received, in arrival order. */
  readonly requests: readonly ProxiedRequest[];
  /**
   * Gives the next `times` requests matching `match` the fault (default once; Infinity
   * until {@link heal}). Rules are tried in the order they were added.
   */
  inject(match: RequestMatcher, fault: Fault, times?: number): FaultRule;
  /** Removes every rule: from now on requests are forwarded as they are. */
  heal(): void;
  /** Resolves when no forwarding (delayed ones included) is in flight. */
  idle(): Promise<void>;
  /** The recorded requests that match. */
  seen(match: RequestMatcher): ProxiedRequest[];
}

export interface FaultyCosmos {
  /** The proxy's endpoint: stores opened on it see the faults. */
  readonly endpoint: string;
  /** The server's own endpoint: stores opened on it bypass the proxy. */
  readonly directEndpoint: string;
  readonly proxy: CosmosFaultProxy;
  close(): Promise<void>;
}

interface Rule extends FaultRule {
  readonly match: RequestMatcher;
}

/** Headers that describe one hop's connection, not the message: never copied across. */
const HOP_HEADERS = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'proxy-connection',
  'upgrade',
]);

function copyHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v !== undefined && !HOP_HEADERS.has(k.toLowerCase())) out[k] = v;
  }
  return out;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// Matchers
// ---------------------------------------------------------------------------

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `/dbs/<db>/colls/<coll>/docs[/<id>]`: `db` and `coll` default to any. */
export function docsPath(db?: string, coll?: string): RegExp {
  const d = db === undefined ? '[^/]+' : escapeRegExp(db);
  const c = coll === undefined ? '[^/]+' : escapeRegExp(coll);
  return new RegExp(`^/dbs/${d}/colls/${c}/docs(/[^/]+)?/?$`);
}

/** Requests with one of `methods` (any if omitted) whose path matches `path` (any if omitted), queries or not as `query` says (either if omitted). */
export function matching(spec: {
  methods?: string[];
  path?: RegExp;
  query?: boolean;
}): RequestMatcher {
  return (r) =>
    (spec.methods === undefined || spec.methods.includes(r.method)) &&
    (spec.path === undefined || spec.path.test(r.path)) &&
    (spec.query === undefined || spec.query === r.isQuery);
}

/** Document creates, replaces and deletes (not queries) in `db`, of collection `coll` or any. */
export const documentWrites = (db: string, coll?: string): RequestMatcher =>
  matching({ methods: ['POST', 'PUT', 'DELETE'], path: docsPath(db, coll), query: false });

/** Point reads of documents in `db`, of collection `coll` or any. */
export const documentReads = (db: string, coll?: string): RequestMatcher =>
  matching({ methods: ['GET'], path: docsPath(db, coll) });

/** Every request to database `db` (its documents, collections, queries, the database itself). */
export const databaseRequests = (db: string): RequestMatcher =>
  matching({ path: new RegExp(`^/dbs/${escapeRegExp(db)}(/|$)`) });

// ---------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  server.unref();
  return (server.address() as AddressInfo).port;
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

/**
 * Starts a cosmosdb-server (plain HTTP) and a fault proxy in front of it, both on
 * 127.0.0.1. `close()` stops both.
 */
export async function startFaultyCosmos(): Promise<FaultyCosmos> {
  const upstream = createHttpServer({ keepAlive: true });
  const upstreamPort = await listen(upstream);
  const agent = new Agent({ keepAlive: true });

  const requests: ProxiedRequest[] = [];
  const rules: Rule[] = [];
  const inFlight = new Set<Promise<unknown>>();

  /** Sends the request on to the server and reads its whole answer. */
  const forward = (
    record: ProxiedRequest,
    url: string,
    body: Buffer,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> => {
    record.forwarded = true;
    const done = new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }>(
      (resolve, reject) => {
        const up = httpRequest(
          {
            host: '127.0.0.1',
            port: upstreamPort,
            method: record.method,
            path: url,
            headers: { ...copyHeaders(record.headers), 'content-length': body.length },
            agent,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('error', reject);
            res.on('end', () => {
              record.upstreamStatus = res.statusCode ?? 0;
              resolve({
                status: res.statusCode ?? 502,
                headers: res.headers,
                body: Buffer.concat(chunks),
              });
            });
          },
        );
        up.on('error', reject);
        up.end(body);
      },
    );
    inFlight.add(done);
    const forget = () => inFlight.delete(done);
    done.then(forget, forget);
    return done;
  };

  const proxy = createServer({ keepAlive: true, keepAliveTimeout: 60_000 }, (req, res) => {
    const record: ProxiedRequest = {
      n: requests.length + 1,
      method: req.method ?? 'GET',
      path: (req.url ?? '/').split('?')[0] ?? '/',
      headers: req.headers,
      isQuery:
        String(req.headers['x-ms-documentdb-isquery'] ?? '').toLowerCase() === 'true' ||
        String(req.headers['content-type'] ?? '').startsWith('application/query+json'),
      at: performance.now(),
      wallAt: Date.now(),
      fault: null,
      forwarded: false,
      upstreamStatus: null,
    };
    requests.push(record);
    const rule = rules.find((r) => r.remaining > 0 && r.match(record));
    if (rule) {
      rule.remaining--;
      rule.hits.push(record);
      record.fault = rule.fault.kind;
    }
    res.on('error', () => {});
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => {});
    req.on('end', () => {
      void handle(rule?.fault, record, req.url ?? '/', Buffer.concat(chunks), res).catch(() => {
        // The server itself failed (e.g. it was closed): the client sees a lost connection.
        req.socket.destroy();
      });
    });
  });
  proxy.keepAliveTimeout = 60_000;

  async function handle(
    fault: Fault | undefined,
    record: ProxiedRequest,
    url: string,
    body: Buffer,
    res: ServerResponse,
  ): Promise<void> {
    const answer = (a: { status: number; headers: IncomingHttpHeaders; body: Buffer }) => {
      if (res.destroyed || res.socket?.destroyed) return;
      res.writeHead(a.status, { ...copyHeaders(a.headers), 'content-length': a.body.length });
      res.end(a.body);
    };
    switch (fault?.kind) {
      case undefined:
        answer(await forward(record, url, body));
        return;
      case 'throttle': {
        const payload = Buffer.from(
          JSON.stringify({
            code: 'TooManyRequests',
            message: `Request rate is large. More Request Units may be needed, so no changes were made. Please retry this request later. (injected by the fault proxy, retry after ${fault.retryAfterMs} ms)`,
          }),
        );
        res.writeHead(429, {
          'content-type': 'application/json',
          'content-length': payload.length,
          'x-ms-retry-after-ms': String(fault.retryAfterMs),
          'x-ms-substatus': '3200',
          'x-ms-activity-id': randomUUID(),
        });
        res.end(payload);
        return;
      }
      case 'drop':
        res.socket?.destroy();
        return;
      case 'hang':
        return;
      case 'delay': {
        const late = (async () => {
          await sleep(fault.ms);
          answer(await forward(record, url, body));
        })();
        inFlight.add(late);
        try {
          await late;
        } finally {
          inFlight.delete(late);
        }
        return;
      }
      case 'cutAfterApply': {
        const a = await forward(record, url, body);
        if (res.destroyed || res.socket?.destroyed) return;
        res.writeHead(a.status, { ...copyHeaders(a.headers), 'content-length': a.body.length });
        res.write(a.body.subarray(0, Math.floor(a.body.length / 2)), () => {
          res.socket?.destroy();
        });
        return;
      }
      case 'dropAfterApply': {
        await forward(record, url, body);
        await fault.beforeDrop?.(record);
        res.socket?.destroy();
        return;
      }
    }
  }

  const proxyPort = await listen(proxy);
  const api: CosmosFaultProxy = {
    endpoint: `http://127.0.0.1:${proxyPort}`,
    requests,
    inject(match, fault, times = 1) {
      const rule: Rule = {
        fault,
        remaining: times,
        hits: [],
        match,
      };
      rules.push(rule);
      return rule;
    },
    heal() {
      rules.length = 0;
    },
    async idle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    seen(match) {
      return requests.filter(match);
    },
  };

  return {
    endpoint: api.endpoint,
    directEndpoint: `http://127.0.0.1:${upstreamPort}`,
    proxy: api,
    async close() {
      rules.length = 0;
      await closeServer(proxy);
      await closeServer(upstream);
      agent.destroy();
    },
  };
}
