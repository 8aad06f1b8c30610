/**
 * The inspector's API on every store: `GET /fleet/overview` and `GET /fleet/me` (401
 * without a token, the caller's product only), and `GET /fleet/stream` over a real
 * socket: 401/404/400 as problem documents, a job stream that replays from the store
 * after `Last-Event-ID` (each later event once, in order), events another process
 * wrote, the product stream, the end of every stream on shutdown, and no stream in
 * the latency histogram.
 */
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type FleetAuth,
  FleetMetrics,
  fleetFrameworkErrors,
  fleetPlugin,
} from '../../adapters/http/index.js';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { Coordinator, type DocumentStore, SimulatedClock } from '../../runtime/index.js';
import { STORES } from '../support/stores.js';
import { openSse, type SseMessage } from './inspector-support.js';
import { expectProblem, OTHER, PRODUCT, TOKENS } from './support.js';

interface Served {
  app: FastifyInstance;
  url: string;
  coordinator: Coordinator;
  clock: SimulatedClock;
}

/** fleetPlugin on `store` with the test tokens, listening on 127.0.0.1:0. */
async function serve(
  store: DocumentStore,
  clock = new SimulatedClock(),
  metrics?: FleetMetrics,
): Promise<Served> {
  const coordinator = new Coordinator({ store, clock, random: () => 0.5 });
  const tokens = new Map<string, FleetAuth>(Object.entries(TOKENS));
  const app = Fastify({ logger: false, frameworkErrors: fleetFrameworkErrors });
  await app.register(fleetPlugin, {
    coordinator,
    authenticate: (r) =>
      tokens.get((r.headers.authorization ?? '').replace(/^Bearer /, '')) ?? null,
    streamRecheckMs: 50,
    streamHeartbeatMs: 200,
    ...(metrics ? { metrics } : {}),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}`, coordinator, clock };
}

const auth = (token: keyof typeof TOKENS) => ({ authorization: `Bearer ${token}` });

async function call(s: Served, method: string, path: string, token: string | null, body?: unknown) {
  return s.app.inject({
    method: method as 'GET',
    url: path,
    headers: {
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
}

async function submit(s: Served, key: string, token = 'submitter'): Promise<string> {
  const res = await call(s, 'POST', '/fleet/jobs', token, { idempotencyKey: key, bodyMd: key });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id;
}

async function claim(s: Served, factoryId: string): Promise<{ id: string; epoch: number }> {
  const res = await call(s, 'POST', '/fleet/claim', 'factory', { factoryId });
  expect(res.statusCode, res.body).toBe(200);
  return { id: res.json().job.id, epoch: res.json().lease.leaseEpoch };
}

async function patch(s: Served, id: string, epoch: number, to: string, factoryId = 'f1') {
  const res = await call(s, 'PATCH', `/fleet/jobs/${id}`, 'factory', {
    factoryId,
    leaseEpoch: epoch,
    to,
  });
  expect(res.statusCode, res.body).toBe(200);
}

const jobEvents = (messages: SseMessage[]) =>
  messages
    .filter((m) => m.event === 'job-event')
    .map((m) => m.data as { seq: number; type: string });

describe.each(STORES)('inspector API on $name', (factory) => {
  let store: DocumentStore;
  let s: Served;
  beforeEach(async () => {
    store = await factory.open();
    s = await serve(store);
  });
  afterEach(async () => {
    await s.app.close();
    await s.coordinator.drain();
    await store.close();
  });

  it('overview: stages of the caller’s product, factories by heartbeat age, throughput and recent events', async () => {
    const a = await submit(s, 'a');
    await submit(s, 'b');
    await submit(s, 'c');
    await submit(s, 'other', 'otherSubmitter');
    const hb = await call(s, 'POST', '/fleet/factories/heartbeat', 'factory', {
      factoryId: 'f1',
      capabilities: [],
      health: 'ok',
      seatLimit: 3,
      heartbeatIntervalMs: 1000,
    });
    expect(hb.statusCode, hb.body).toBe(200);
    const grant = await claim(s, 'f1');
    expect(grant.id).toBe(a);
    const res = await call(s, 'GET', '/fleet/overview', 'submitter');
    expect(res.statusCode, res.body).toBe(200);
    const o = res.json();
    expect(o.productId).toBe(PRODUCT);
    expect(o.stages).toEqual({
      queued: 2,
      blocked: 0,
      assigned: 1,
      building: 0,
      review: 0,
      testing: 0,
      shipped: 0,
      failed: 0,
      dead_letter: 0,
    });
    expect(o.totalJobs).toBe(3);
    expect(o.factories.items).toEqual([
      expect.objectContaining({ factoryId: 'f1', status: 'ok', seatsHeld: 1, seatLimit: 3 }),
    ]);
    expect(o.throughput.totalClaims).toBe(1);
    expect(o.throughput.claims).toHaveLength(60);
    expect(o.recentEvents[0]).toMatchObject({
      jobId: a,
      type: 'claimed',
      from: 'queued',
      to: 'assigned',
    });
    expect(o.recentEvents.map((e: { type: string }) => e.type)).toEqual([
      'claimed',
      'submitted',
      'submitted',
      'submitted',
    ]);
    expect(JSON.stringify(o)).not.toContain(OTHER);

    s.clock.advance(3_500);
    expect((await call(s, 'GET', '/fleet/overview', 'admin')).json().factories.counts).toEqual({
      ok: 0,
      stale: 1,
      lost: 0,
    });
    s.clock.advance(30_000);
    const lost = (await call(s, 'GET', '/fleet/overview', 'admin')).json();
    expect(lost.factories.counts).toEqual({ ok: 0, stale: 0, lost: 1 });
    expect(lost.factories.items[0]).toMatchObject({ status: 'lost', seatsHeld: 0 });
    // Another product sees none of it.
    const theirs = (await call(s, 'GET', '/fleet/overview', 'otherAdmin')).json();
    expect(theirs.stages.queued).toBe(1);
    expect(theirs.factories.items).toEqual([]);
    expect(theirs.recentEvents.map((e: { jobId: string }) => e.jobId)).not.toContain(a);
  });

  it('401 without a token, 404 across products, 400 without Accept: text/event-stream', async () => {
    const mine = await submit(s, 'mine');
    for (const path of [
      '/fleet/overview',
      '/fleet/me',
      '/fleet/stream',
      `/fleet/stream?job=${mine}`,
    ]) {
      expectProblem(await call(s, 'GET', path, null), 'UNAUTHENTICATED');
      expectProblem(await call(s, 'GET', path, 'nope'), 'UNAUTHENTICATED');
    }
    const theirs = await openSse(`${s.url}/fleet/stream?job=${mine}`, auth('otherAdmin'));
    const missing = await openSse(`${s.url}/fleet/stream?job=job_missing`, auth('otherAdmin'));
    for (const r of [theirs, missing]) {
      expect(r.status).toBe(404);
      expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
      await r.ended;
    }
    const plain = await call(s, 'GET', `/fleet/stream?job=${mine}`, 'admin');
    expect(expectProblem(plain, 'VALIDATION').detail).toMatch(/text\/event-stream/);
    const badId = await openSse(`${s.url}/fleet/stream?job=${mine}`, {
      ...auth('admin'),
      'last-event-id': 'seven',
    });
    expect(badId.status).toBe(400);
    await badId.ended;
    const me = (await call(s, 'GET', '/fleet/me', 'submitter')).json();
    expect(me).toEqual({ productId: PRODUCT, roles: ['submitter'], subject: 'sub-1' });
  });

  it('job stream: Last-Event-ID replays from the store, then each later event once, in order', async () => {
    const id = await submit(s, 'streamed');
    const g = await claim(s, 'f1');
    await patch(s, id, g.epoch, 'building');
    await patch(s, id, g.epoch, 'review'); // seq 1..4 stored
    const r = await openSse(`${s.url}/fleet/stream?job=${id}`, {
      ...auth('submitter'),
      'last-event-id': '2',
    });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/event-stream/);
    await r.until((m) => jobEvents(m).length === 2 && m.some((x) => x.event === 'job'));
    expect(r.messages[0]).toMatchObject({ event: 'ready' });
    expect(jobEvents(r.messages).map((e) => e.seq)).toEqual([3, 4]);
    expect(r.messages.filter((m) => m.event === 'job-event').map((m) => m.id)).toEqual(['3', '4']);
    expect(r.messages.find((m) => m.event === 'job')!.data).toMatchObject({ id, stage: 'review' });
    await patch(s, id, g.epoch, 'testing');
    await patch(s, id, g.epoch, 'shipped');
    await r.until((m) => jobEvents(m).length === 4);
    expect(jobEvents(r.messages).map((e) => [e.seq, e.type])).toEqual([
      [3, 'stage_changed'],
      [4, 'stage_changed'],
      [5, 'stage_changed'],
      [6, 'stage_changed'],
    ]);
    r.close();
    // A reconnect after the last seq gets nothing again; from 0 everything, once.
    const again = await openSse(`${s.url}/fleet/stream?job=${id}`, {
      ...auth('submitter'),
      'last-event-id': '6',
    });
    const all = await openSse(`${s.url}/fleet/stream?job=${id}`, auth('submitter'));
    await all.until((m) => jobEvents(m).length === 6);
    await again.until((m) => m.some((x) => x.event === 'ready'));
    await all.until((m) => m.filter((x) => x.event === 'job').length >= 1);
    expect(jobEvents(all.messages).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(jobEvents(again.messages)).toEqual([]);
    again.close();
    all.close();
  });

  it('job stream: events stored by another process arrive (the store is re-read)', async () => {
    const id = await submit(s, 'elsewhere');
    const g = await claim(s, 'f1');
    const r = await openSse(`${s.url}/fleet/stream?job=${id}`, auth('admin'));
    await r.until((m) => jobEvents(m).length === 2);
    // A second coordinator on the same store: its events are not reported to the first.
    const other = new Coordinator({ store, clock: s.clock });
    const moved = await other.transition(PRODUCT, id, {
      factoryId: 'f1',
      leaseEpoch: g.epoch,
      to: 'building',
    });
    expect(moved.ok).toBe(true);
    await r.until((m) => jobEvents(m).length === 3);
    expect(jobEvents(r.messages).map((e) => e.seq)).toEqual([1, 2, 3]);
    r.close();
    await other.drain();
  });

  it('product stream: this product’s events as they happen; resume by id; reset when unknown', async () => {
    const r = await openSse(`${s.url}/fleet/stream`, auth('submitter'));
    await r.until((m) => m.some((x) => x.event === 'ready'));
    const id = await submit(s, 'p1');
    await submit(s, 'theirs', 'otherSubmitter');
    await claim(s, 'f1');
    await r.until((m) => jobEvents(m).length === 2);
    const events = r.messages.filter((m) => m.event === 'job-event');
    expect(events.map((m) => (m.data as { type: string }).type)).toEqual(['submitted', 'claimed']);
    expect(events.every((m) => (m.data as { jobId: string }).jobId === id)).toBe(true);
    const firstId = events[0]!.id!;
    r.close();
    const resumed = await openSse(`${s.url}/fleet/stream`, {
      ...auth('submitter'),
      'last-event-id': firstId,
    });
    await resumed.until((m) => jobEvents(m).length === 1);
    expect(jobEvents(resumed.messages).map((e) => e.type)).toEqual(['claimed']);
    resumed.close();
    const stale = await openSse(`${s.url}/fleet/stream`, {
      ...auth('submitter'),
      'last-event-id': 'other-boot-7',
    });
    await stale.until((m) => m.some((x) => x.event === 'reset'));
    stale.close();
  });
});

/** Metrics that remember which routes were recorded. */
class RouteSpy extends FleetMetrics {
  readonly routes: string[] = [];
  override recordRequest(route: string, method: string, status: number, seconds: number): void {
    super.recordRequest(route, method, status, seconds);
    this.routes.push(`${method} ${route}`);
  }
}

describe('streams and shutdown', () => {
  it('open streams end when the server closes; heartbeats flow; streams stay out of the latency histogram', async () => {
    const store = createMemoryStore();
    const metrics = new RouteSpy();
    const s = await serve(store, new SimulatedClock(), metrics);
    const id = await submit(s, 'x');
    const job = await openSse(`${s.url}/fleet/stream?job=${id}`, auth('admin'));
    const product = await openSse(`${s.url}/fleet/stream`, auth('admin'));
    const refused = await openSse(`${s.url}/fleet/stream?job=nope`, auth('admin'));
    expect(refused.status).toBe(404);
    await refused.ended;
    await job.until((m) => jobEvents(m).length === 1);
    await product.until((m) => m.some((x) => x.event === 'ready'));
    // Heartbeat comments arrive (every 200 ms here): wait for two, bounded.
    await new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const tick = setInterval(() => {
        if (job.comments >= 2) {
          clearInterval(tick);
          resolve();
        } else if (Date.now() - started > 20_000) {
          clearInterval(tick);
          reject(new Error('no heartbeat'));
        }
      }, 20);
    });
    // close() ends both streams (it would wait for them forever otherwise).
    await s.app.close();
    await Promise.all([job.ended, product.ended]);
    expect(s.app.server.listening).toBe(false);
    await s.coordinator.drain();
    await store.close();
    // Every answered request is in the histogram but the two streams.
    expect(metrics.routes).toContain('POST /fleet/jobs');
    expect(metrics.routes.filter((r) => r.endsWith('/fleet/stream'))).toEqual([]);
    // Refused stream requests (problems, answered at once) are left out too: the whole route is.
    expect(metrics.routes.filter((r) => r.includes('stream'))).toEqual([]);
  });
});
