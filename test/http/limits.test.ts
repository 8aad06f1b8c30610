/**
 * Issue 14: bodies, URLs, query strings and headers at and past every limit get a
 * 413 or 400 problem document, never a 5xx, and change nothing. Over real sockets
 * against the standalone server (127.0.0.1, port 0), since Node's own HTTP parser
 * enforces the header limits before Fastify sees a request (`app.inject` skips it), and
 * through `app.inject` for every mutating route's body at and one byte past the limit.
 */
import { once } from 'node:events';
import { maxHeaderSize } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BATCH_BODY_FACTOR } from '../../adapters/http/batch-routes.js';
import { loadConfig } from '../../adapters/http/config.js';
import { buildServer, type FleetServer, listen } from '../../adapters/http/server.js';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import {
  buildTestApp,
  claimJob,
  closeTestApp,
  dumpProduct,
  expectProblem,
  PRODUCT,
  ROUTES,
  submitJob,
  type TestApp,
} from './support.js';

const BODY_LIMIT = 4096;
const TOKEN = 'limits-token';

const servers: FleetServer[] = [];
let t: TestApp | undefined;
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  if (t) await closeTestApp(t);
  t = undefined;
});

async function serve(): Promise<{ server: FleetServer; port: number }> {
  const server = await buildServer(
    loadConfig({
      FLEET_STORE: 'memory',
      PORT: '0',
      FLEET_BODY_LIMIT: String(BODY_LIMIT),
      FLEET_TOKENS: JSON.stringify([
        { token: TOKEN, productId: 'acme', roles: ['submitter', 'factory'] },
      ]),
    }),
    { logger: false },
  );
  servers.push(server);
  const url = new URL(await listen(server));
  return { server, port: Number(url.port) };
}

/** One raw HTTP/1.1 exchange: sends `request`, resolves with what came back when the server closes or answers whole. */
async function exchange(port: number, request: string | Buffer): Promise<RawResponse> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  const closed = once(socket, 'close');
  socket.write(request);
  // Wait until a whole response is in (by Content-Length) or the server closed.
  for (;;) {
    const parsed = parse(Buffer.concat(chunks));
    if (parsed !== null) {
      socket.destroy();
      return parsed;
    }
    const more = once(socket, 'data');
    const r = await Promise.race([more.then(() => 'data'), closed.then(() => 'closed')]);
    if (r === 'closed') {
      const last = parse(Buffer.concat(chunks));
      if (last === null) throw new Error(`incomplete answer: ${Buffer.concat(chunks).toString()}`);
      return last;
    }
  }
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function parse(data: Buffer): RawResponse | null {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const [statusLine, ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const length = Number(headers['content-length'] ?? Number.NaN);
  const body = data.subarray(end + 4);
  if (!Number.isFinite(length) || body.length < length) return null;
  return {
    status: Number(statusLine!.split(' ')[1]),
    headers,
    body: body.subarray(0, length).toString('utf8'),
  };
}

/** Asserts a raw response is a problem document with `code` and `status`. */
function expectRawProblem(res: RawResponse, status: number, code: string) {
  expect({ status: res.status, type: res.headers['content-type'] }, res.body).toEqual({
    status,
    type: expect.stringMatching(/^application\/problem\+json/),
  });
  const problem = JSON.parse(res.body) as Record<string, unknown>;
  expect(problem).toMatchObject({ status, code });
  return problem;
}

const request = (
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body = '',
): string =>
  [
    `${method} ${target} HTTP/1.1`,
    'Host: 127.0.0.1',
    `Authorization: Bearer ${TOKEN}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ...(body === '' ? [] : [`Content-Length: ${Buffer.byteLength(body)}`]),
    '',
    body,
  ].join('\r\n');

/** A submit body of exactly `bytes` bytes (JSON padded with spaces). */
function submitOf(bytes: number, key: string): string {
  const json = JSON.stringify({ idempotencyKey: key, bodyMd: 'x' });
  expect(bytes).toBeGreaterThanOrEqual(json.length);
  return `${json.slice(0, -1)}${' '.repeat(bytes - json.length)}}`;
}

describe('limits over a real socket', () => {
  it('a body of exactly the limit is taken; one byte more is 413 PAYLOAD_TOO_LARGE and stores nothing (Content-Length and chunked)', async () => {
    const { server, port } = await serve();
    const at = submitOf(BODY_LIMIT, 'at-limit');
    expect(Buffer.byteLength(at)).toBe(BODY_LIMIT);
    const ok = await exchange(
      port,
      request('POST', '/fleet/jobs', { 'Content-Type': 'application/json' }, at),
    );
    expect(ok.status, ok.body).toBe(201);

    const over = submitOf(BODY_LIMIT + 1, 'over-limit');
    const refused = await exchange(
      port,
      request('POST', '/fleet/jobs', { 'Content-Type': 'application/json' }, over),
    );
    const problem = expectRawProblem(refused, 413, 'PAYLOAD_TOO_LARGE');
    expect(problem.limitBytes).toBe(BODY_LIMIT);

    // The same body sent in chunks, without a length.
    const chunked = [
      'POST /fleet/jobs HTTP/1.1',
      'Host: 127.0.0.1',
      `Authorization: Bearer ${TOKEN}`,
      'Content-Type: application/json',
      'Transfer-Encoding: chunked',
      '',
      `${(BODY_LIMIT + 1).toString(16)}\r\n${submitOf(BODY_LIMIT + 1, 'chunked-over')}\r\n0\r\n\r\n`,
    ].join('\r\n');
    expectRawProblem(await exchange(port, chunked), 413, 'PAYLOAD_TOO_LARGE');

    const jobs = (await server.coordinator.listJobs('acme', { limit: 10 })) as {
      ok: true;
      value: { items: { idempotencyKey: string }[] };
    };
    expect(jobs.value.items.map((j) => j.idempotencyKey)).toEqual(['at-limit']);
  });

  it('a request line and headers over Node’s limit are a 413 problem, not Node’s bare 431; the server goes on', async () => {
    const { port } = await serve();
    // A URL (a query string) past the limit.
    const longUrl = `/fleet/jobs?cursor=${'a'.repeat(maxHeaderSize + 10)}`;
    const url = expectRawProblem(
      await exchange(port, request('GET', longUrl)),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    expect(url.detail).toMatch(new RegExp(`larger than ${maxHeaderSize} bytes`));
    expect(url.limitBytes).toBe(maxHeaderSize);
    // One huge header: Authorization.
    const auth = request('GET', '/fleet/jobs').replace(
      `Bearer ${TOKEN}`,
      `Bearer ${'t'.repeat(maxHeaderSize)}`,
    );
    expectRawProblem(await exchange(port, auth), 413, 'PAYLOAD_TOO_LARGE');
    // Many small headers that add up past it.
    const many: Record<string, string> = {};
    for (let i = 0; i < 2500; i++) many[`x-h${i}`] = 'v';
    expectRawProblem(
      await exchange(port, request('GET', '/fleet/jobs', many)),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    // And the server still answers.
    expect((await exchange(port, request('GET', '/fleet/jobs'))).status).toBe(200);
  });

  it('just under Node’s limits: a long query string, a long Authorization, 1,500 headers get Fleet’s ordinary answers', async () => {
    const { port } = await serve();
    // A cursor of 2,001 characters: past the schema's 2,000 → 400 naming it.
    const cursor = expectRawProblem(
      await exchange(port, request('GET', `/fleet/jobs?cursor=${'a'.repeat(2001)}`)),
      400,
      'VALIDATION',
    );
    expect(cursor.detail).toMatch(/query\.cursor/);
    // Thousands of parameters (short ones, to stay under Node's 16 KiB): unknown ones are
    // ignored, a repeated known one is a 400.
    const unknown = Array.from({ length: 3000 }, (_, i) => `${i.toString(36)}=`).join('&');
    expect((await exchange(port, request('GET', `/fleet/jobs?${unknown}`))).status).toBe(200);
    const repeated = Array.from({ length: 2000 }, () => 'stage=').join('&');
    expectRawProblem(
      await exchange(port, request('GET', `/fleet/jobs?${repeated}`)),
      400,
      'VALIDATION',
    );
    // An Authorization header of 15,000 characters: an unknown token, 401.
    const auth = request('GET', '/fleet/jobs').replace(
      `Bearer ${TOKEN}`,
      `Bearer ${'t'.repeat(15_000)}`,
    );
    expectRawProblem(await exchange(port, auth), 401, 'UNAUTHENTICATED');
    // 1,500 small headers: under both limits.
    const many: Record<string, string> = {};
    for (let i = 0; i < 1500; i++) many[`x-h${i}`] = 'v';
    expect((await exchange(port, request('GET', '/fleet/jobs', many))).status).toBe(200);
  });

  it('malformed HTTP is a 400 problem: a bad Content-Length, a header name with a space, a bad method', async () => {
    const { port } = await serve();
    const cases = [
      'POST /fleet/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
      'POST /fleet/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
      'GET /fleet/jobs HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n',
      'G@T /fleet/jobs HTTP/1.1\r\nHost: x\r\n\r\n',
    ];
    for (const raw of cases) {
      const problem = expectRawProblem(await exchange(port, raw), 400, 'VALIDATION');
      expect(problem.detail).toMatch(/not valid HTTP/);
    }
  });
});

describe('every mutating route at and past the body limit (inject)', () => {
  it('exactly the limit is never a 413 or a 5xx; one byte more is a 413 and changes nothing', async () => {
    t = await buildTestApp({ store: createMemoryStore(), bodyLimit: BODY_LIMIT });
    const job = await submitJob(t);
    await submitJob(t);
    const { lease } = await claimJob(t, 'f1');
    for (const route of ROUTES.filter((r) => r.mutating)) {
      // Bulk submission takes BATCH_BODY_FACTOR times the limit (1,000 jobs in one body).
      const limit =
        route.openapi === '/fleet/jobs/batch' ? BODY_LIMIT * BATCH_BODY_FACTOR : BODY_LIMIT;
      const base = JSON.stringify(
        route.body?.({ factoryId: 'f1', leaseEpoch: lease.leaseEpoch }) ?? {},
      );
      const pad = (bytes: number) => `${base.slice(0, -1)}${' '.repeat(bytes - base.length)}}`;
      const send = (payload: string) =>
        t!.call(route.method, route.path(job.id), {
          token: 'admin',
          headers: { 'content-type': 'application/json' },
          payload,
        });
      const before = await dumpProduct(t.store, PRODUCT);
      const over = await send(pad(limit + 1));
      expect(expectProblem(over, 'PAYLOAD_TOO_LARGE').limitBytes).toBe(limit);
      expect(await dumpProduct(t.store, PRODUCT), route.path('{id}')).toEqual(before);
      const at = await send(pad(limit));
      expect(at.statusCode, `${route.method} ${route.path('{id}')}: ${at.body}`).toBeLessThan(500);
      expect(at.statusCode).not.toBe(413);
    }
  });
});
