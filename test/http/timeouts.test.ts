/**
 * Issue 10, item 8: no client holds a connection of the standalone server without end.
 * Over real sockets against a listening server (127.0.0.1, port 0): a client that sends
 * part of its body and then nothing, one that trickles its body byte by byte, and one
 * that sends nothing at all are cut off; a long-poll claim outlasting the request
 * timeout is still answered. And the plugin caps the long-poll claims one caller may
 * have parked. Every wait is on an event (a socket closing, a claim parking), bounded
 * by the test's timeout, never on a sleep.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type FleetConfig, loadConfig } from '../../adapters/http/config.js';
import { buildServer, type FleetServer, listen } from '../../adapters/http/server.js';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import {
  buildTestApp,
  closeTestApp,
  expectProblem,
  SpyMetrics,
  submitJob,
  type TestApp,
} from './support.js';

const TOKEN = 'factory-and-submitter';
const TOKENS = JSON.stringify([
  { token: TOKEN, productId: 'acme', roles: ['submitter', 'factory'] },
]);

const servers: FleetServer[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await s.close();
});

/** A listening standalone server on the memory store with the given timeouts. */
async function serve(
  timeouts: Pick<FleetConfig, 'requestTimeoutMs' | 'connectionTimeoutMs'>,
): Promise<{ host: string; port: number }> {
  const config = {
    ...loadConfig({ FLEET_STORE: 'memory', FLEET_TOKENS: TOKENS, PORT: '0' }),
    ...timeouts,
  };
  const server = await buildServer(config, { logger: false });
  servers.push(server);
  const url = new URL(await listen(server));
  return { host: url.hostname, port: Number(url.port) };
}

/** A raw client socket; resolves once connected. Collects what the server sends. */
async function open(at: { host: string; port: number }): Promise<{
  socket: Socket;
  received: () => string;
  closed: Promise<unknown>;
}> {
  const socket = connect(at.port, at.host);
  sockets.push(socket);
  let text = '';
  socket.setEncoding('utf8').on('data', (d: string) => {
    text += d;
  });
  socket.on('error', () => {}); // a reset is one way of being cut off
  const closed = once(socket, 'close');
  await once(socket, 'connect');
  return { socket, received: () => text, closed };
}

const head = (length: number) =>
  [
    'POST /fleet/jobs HTTP/1.1',
    'Host: 127.0.0.1',
    `Authorization: Bearer ${TOKEN}`,
    'Content-Type: application/json',
    `Content-Length: ${length}`,
    '',
    '',
  ].join('\r\n');

describe('8: request and connection timeouts of the standalone server', () => {
  it('8: a slow-body client (1 byte of a 100-byte body, then nothing) is cut off with 408', async () => {
    // Only the request timeout can cut it: the connection timeout is far longer.
    const at = await serve({ requestTimeoutMs: 1000, connectionTimeoutMs: 600_000 });
    const client = await open(at);
    client.socket.write(`${head(100)}{`);
    await client.closed; // bounded by the test timeout
    expect(client.received()).toMatch(/^HTTP\/1\.1 408 /);
  }, 60_000);

  it('8: a client that trickles its body, never idle, is still cut off by the request timeout', async () => {
    const at = await serve({ requestTimeoutMs: 1000, connectionTimeoutMs: 600_000 });
    const client = await open(at);
    client.socket.write(`${head(1_000_000)}{`);
    // A byte every 50 ms keeps the connection busy until the server ends it.
    const drip = setInterval(() => {
      if (!client.socket.destroyed) client.socket.write(' ');
    }, 50);
    try {
      await client.closed;
    } finally {
      clearInterval(drip);
    }
    expect(client.received()).toMatch(/^HTTP\/1\.1 408 /);
  }, 60_000);

  it('8: a connection that sends nothing is closed by the connection timeout', async () => {
    const at = await serve({ requestTimeoutMs: 600_000, connectionTimeoutMs: 1000 });
    const client = await open(at);
    await client.closed;
    expect(client.received()).toBe('');
  }, 60_000);

  it('8: a long-poll claim that waits longer than the request timeout is answered, not cut', async () => {
    const at = await serve({ requestTimeoutMs: 1000, connectionTimeoutMs: 600_000 });
    const body = JSON.stringify({ factoryId: 'f1', waitMs: 2500 });
    const res = await fetch(`http://${at.host}:${at.port}/fleet/claim`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body,
    });
    expect(res.status).toBe(204);
  }, 60_000);

  it('8: the defaults are longer than the longest long-poll claim, and configurable', () => {
    const defaults = loadConfig({ FLEET_STORE: 'memory' });
    expect(defaults.requestTimeoutMs).toBe(45_000);
    expect(defaults.connectionTimeoutMs).toBe(60_000);
    expect(defaults.maxParkedClaims).toBe(64);
    const set = loadConfig({
      FLEET_STORE: 'memory',
      FLEET_REQUEST_TIMEOUT_MS: '5000',
      FLEET_CONNECTION_TIMEOUT_MS: '40000',
      FLEET_MAX_PARKED_CLAIMS: '8',
    });
    expect(set).toMatchObject({
      requestTimeoutMs: 5000,
      connectionTimeoutMs: 40_000,
      maxParkedClaims: 8,
    });
    // A connection timeout under 30 s would cut long-poll claims while they wait.
    expect(() => loadConfig({ FLEET_CONNECTION_TIMEOUT_MS: '30000' })).toThrow(
      /FLEET_CONNECTION_TIMEOUT_MS: must be a whole number from 31000/,
    );
  });
});

describe('8: parked long-poll claims are capped per caller', () => {
  let t: TestApp | undefined;
  afterEach(async () => {
    if (t) await closeTestApp(t); // a second close of the app is a no-op
    t = undefined;
  });

  it('8: over the cap, a claim that would park answers 429 RATE_LIMITED with Retry-After; others are not affected', async () => {
    const metrics = new SpyMetrics();
    t = await buildTestApp({
      store: createMemoryStore(),
      metrics,
      maxParkedClaims: 2,
      claimRecheckMs: 3000,
    });
    const app = t;
    const claim = (
      factoryId: string,
      o: { token?: 'factory' | 'admin'; waitMs?: number; capabilities?: string[] } = {},
    ) =>
      app.call('POST', '/fleet/claim', {
        token: o.token ?? 'factory',
        body: {
          factoryId,
          waitMs: o.waitMs ?? 30_000,
          ...(o.capabilities ? { capabilities: o.capabilities } : {}),
        },
      });
    /** Starts a long poll and resolves once it is parked, with its answer to come. */
    const parked = async (factoryId: string, token: 'factory' | 'admin' = 'factory') => {
      const started = metrics.next('started');
      const answer = claim(factoryId, { token });
      await started;
      return { answer }; // wrapped: an async function would wait for the answer itself
    };
    const a = await parked('f1');
    const b = await parked('f2');

    // The token's third long poll: refused, with when to come back.
    const refused = await claim('f3');
    const problem = expectProblem(refused, 'RATE_LIMITED');
    expect(refused.headers['retry-after']).toBe('3');
    expect(problem).toMatchObject({ limit: 2, retryAfterSeconds: 3 });
    expect(problem.detail).toMatch(/already has 2 long-poll claims waiting/);
    // A claim that does not wait, or finds a job at once, is never refused.
    expect((await claim('f3', { waitMs: 0 })).statusCode).toBe(204);
    const gpu = await submitJob(app, { capabilities: ['gpu'] });
    const found = await claim('f3', { capabilities: ['gpu'] });
    expect(found.statusCode, found.body).toBe(200);
    expect(found.json().job.id).toBe(gpu.id);

    // A parked claim that gets a job gives its slot back: the token may park again.
    const ended = metrics.next('ended');
    await submitJob(app);
    expect(await ended).toBe('claimed');
    const c = await parked('f4');
    // Another caller (the admin token, subject "ops") has slots of its own.
    const d = await parked('f5', 'admin');

    await app.app.close(); // parked claims end with 204
    const answers = (await Promise.all([a, b, c, d].map((p) => p.answer)))
      .map((r) => r.statusCode)
      .sort();
    expect(answers).toEqual([200, 204, 204, 204]);
  });
});
