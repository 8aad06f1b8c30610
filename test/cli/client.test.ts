/**
 * The typed client (`fleet/client`): every route it calls is in the server's OpenAPI
 * document (checked on `/docs/json`, and by recording what the client really sends
 * while every method is exercised); errors carry the problem's status, code and detail;
 * retries happen only where a second send is harmless; timeouts and aborts end a call.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLIENT_ROUTES,
  createFleetClient,
  FleetApiError,
  FleetNetworkError,
} from '../../adapters/client/index.js';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { buildTestApp, type TestApp } from '../http/support.js';
import { injectFetch, type SentRequest } from '../support/inject-fetch.js';

/** The OpenAPI path (or path template) that `path` matches, among `templates`. */
function templateOf(path: string, templates: string[]): string | undefined {
  // A literal path (`/fleet/jobs/batch`) wins over a template it also matches (`/fleet/jobs/{id}`).
  if (templates.includes(path)) return path;
  return templates.find((t) => new RegExp(`^${t.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path));
}

describe('client contract', () => {
  let t: TestApp;
  afterEach(async () => t?.app.close());

  it('every route of the client is an operation of /docs/json, and every request it sends is one', async () => {
    t = await buildTestApp({ store: createMemoryStore() });
    const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    for (const [op, route] of Object.entries(CLIENT_ROUTES)) {
      expect(
        doc.paths[route.path]?.[route.method.toLowerCase()],
        `${op}: ${route.method} ${route.path}`,
      ).toBeDefined();
    }

    // Exercise every method; record what goes on the wire.
    const sent: SentRequest[] = [];
    const c = createFleetClient({
      baseUrl: 'http://fleet.test',
      token: 'admin',
      fetch: injectFetch(t.app, sent),
    });
    const { job, outcome } = await c.submit({ idempotencyKey: 'contract-1', bodyMd: 'x' });
    expect(outcome).toBe('created');
    expect((await c.submit({ idempotencyKey: 'contract-1', bodyMd: 'x' })).outcome).toBe(
      'existing',
    );
    const batch = await c.submitMany([
      { idempotencyKey: 'contract-1', bodyMd: 'x' },
      { idempotencyKey: 'contract-2', bodyMd: 'y', depKeys: ['contract-1'] },
      { idempotencyKey: 'contract-1', bodyMd: 'other' },
    ]);
    expect(batch.map((i) => [i.status, i.idempotency ?? i.problem?.code])).toEqual([
      [200, 'existing'],
      [201, 'created'],
      [409, 'IDEMPOTENCY_CONFLICT'],
    ]);
    expect(batch[1]?.job).toMatchObject({ stage: 'blocked', deps: [job.id] });
    expect((await c.listJobs({ stage: 'queued', limit: 5 })).items.map((j) => j.id)).toEqual([
      job.id,
    ]);
    const versioned = await c.getJobWithETag(job.id);
    expect(versioned.etag).toMatch(/.+/);
    await c.heartbeat({ factoryId: 'f1', capabilities: [], health: 'ok' });
    const claim = await c.claim({ factoryId: 'f1' });
    expect(claim?.lease.ttlMs).toBe(60_000);
    const me = { factoryId: 'f1', leaseEpoch: claim!.lease.leaseEpoch };
    expect((await c.transition(job.id, { ...me, to: 'building' })).stage).toBe('building');
    expect((await c.renewLease(job.id, me)).leaseEpoch).toBe(me.leaseEpoch);
    await c.recordProgress(job.id, {
      ...me,
      seq: 1,
      artifacts: [{ name: 'log', uri: 'file:///x' }],
    });
    expect((await c.listArtifacts(job.id)).items).toHaveLength(1);
    expect((await c.releaseLease(job.id, me)).stage).toBe('queued');
    expect((await c.listRuns(job.id)).items).toHaveLength(1);
    expect((await c.listEvents(job.id, { limit: 2 })).nextCursor).toBe('2');
    expect((await c.listFactories()).items.map((f) => f.factoryId)).toEqual(['f1']);
    expect((await c.cancel(job.id, { reason: 'test' })).stage).toBe('dead_letter');
    expect(await c.claim({ factoryId: 'f2' })).toBeNull(); // 204: nothing eligible
    expect((await c.requeue(job.id)).stage).toBe('queued');
    expect(await c.health()).toEqual({ status: 'ok' });
    expect((await c.ready()).status).toBe('ready');
    // Retention: this admin is not an operator, so the server refuses (the call is sent;
    // a successful prune through the client is in test/http/retention.test.ts).
    await expect(c.prune({ olderThan: '7d', dryRun: true })).rejects.toMatchObject({
      status: 403,
      code: 'FORBIDDEN',
    });

    const templates = Object.keys(doc.paths);
    const used = new Set<string>();
    for (const r of sent) {
      const template = templateOf(r.path, templates);
      expect(template, `${r.method} ${r.path}`).toBeDefined();
      expect(
        doc.paths[template!]![r.method.toLowerCase()],
        `${r.method} ${template}`,
      ).toBeDefined();
      used.add(`${r.method} ${template}`);
    }
    expect([...used].sort()).toEqual(
      Object.values(CLIENT_ROUTES)
        .map((r) => `${r.method} ${r.path}`)
        .sort(),
    );
    expect(sent.every((r) => r.headers.authorization === 'Bearer admin')).toBe(true);
  });

  it('errors carry the problem: status, code, detail, and a FENCED reason', async () => {
    t = await buildTestApp({ store: createMemoryStore() });
    const c = createFleetClient({
      baseUrl: 'http://fleet.test',
      token: 'admin',
      fetch: injectFetch(t.app),
    });
    const missing = await c.getJob('nope').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(FleetApiError);
    expect(missing).toMatchObject({
      status: 404,
      code: 'NOT_FOUND',
      detail: 'no job nope',
      request: 'GET /fleet/jobs/nope',
    });
    const { job } = await c.submit({ idempotencyKey: 'fence', bodyMd: 'x' });
    const claim = await c.claim({ factoryId: 'f1' });
    await c.releaseLease(job.id, { factoryId: 'f1', leaseEpoch: claim!.lease.leaseEpoch });
    const fenced = (await c
      .transition(job.id, { factoryId: 'f1', leaseEpoch: claim!.lease.leaseEpoch, to: 'building' })
      .catch((e: unknown) => e)) as FleetApiError;
    expect(fenced).toMatchObject({ status: 409, code: 'FENCED', fenceReason: 'released' });
    expect(fenced.problem.leaseEpoch).toBe(claim!.lease.leaseEpoch + 1);
    const anonymous = createFleetClient({
      baseUrl: 'http://fleet.test',
      fetch: injectFetch(t.app),
    });
    await expect(anonymous.listJobs()).rejects.toMatchObject({
      status: 401,
      code: 'UNAUTHENTICATED',
    });
    const bad = await c.submit({ idempotencyKey: '', bodyMd: 'x' }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ status: 400, code: 'VALIDATION' });
  });

  it('keeps a base URL’s path prefix (a host that mounted the plugin under /api)', async () => {
    const urls: string[] = [];
    const c = createFleetClient({
      baseUrl: 'http://host.test/api/',
      token: 't',
      fetch: async (input) => {
        urls.push(String(input));
        return Response.json({ items: [], nextCursor: null });
      },
    });
    await c.listJobs({ stage: 'queued', cursor: null });
    expect(urls).toEqual(['http://host.test/api/fleet/jobs?stage=queued']);
  });
});

/** A fetch that answers from a script, one step per call. */
function scripted(steps: Array<'refused' | 'reset' | 'hang' | Response>): {
  fetch: typeof fetch;
  calls: () => number;
} {
  let calls = 0;
  return {
    calls: () => calls,
    fetch: (_input, init) => {
      const step = steps[Math.min(calls++, steps.length - 1)]!;
      if (step === 'hang') {
        return new Promise((_resolve, reject) => {
          init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
        });
      }
      if (step === 'refused' || step === 'reset') {
        const code = step === 'refused' ? 'ECONNREFUSED' : 'ECONNRESET';
        return Promise.reject(
          new TypeError('fetch failed', { cause: Object.assign(new Error(code), { code }) }),
        );
      }
      return Promise.resolve(step.clone());
    },
  };
}

const JOB = { id: 'job_1', stage: 'building' };
const ok = () => Response.json(JOB);
const unavailable = () =>
  new Response(JSON.stringify({ code: 'STORE_UNAVAILABLE', status: 503, detail: 'later' }), {
    status: 503,
    headers: { 'content-type': 'application/problem+json', 'retry-after': '0' },
  });
const clientWith = (s: ReturnType<typeof scripted>, timeoutMs?: number) =>
  createFleetClient({
    baseUrl: 'http://fleet.test',
    token: 't',
    fetch: s.fetch,
    backoff: { baseMs: 1, capMs: 1 },
    ...(timeoutMs ? { timeoutMs } : {}),
  });
const patch = { factoryId: 'f', leaseEpoch: 1, to: 'building' as const };

describe('client retries', () => {
  it('claim and PATCH are sent again only when they never left (connection refused)', async () => {
    const refused = scripted(['refused', 'refused', ok()]);
    expect(await clientWith(refused).transition('job_1', patch)).toEqual(JOB);
    expect(refused.calls()).toBe(3);

    const reset = scripted(['reset', ok()]);
    const e = await clientWith(reset)
      .transition('job_1', patch)
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FleetNetworkError);
    expect(e).toMatchObject({ kind: 'network', maybeSent: true });
    expect(reset.calls()).toBe(1);

    const busy = scripted([unavailable(), ok()]);
    await expect(clientWith(busy).claim({ factoryId: 'f' })).rejects.toMatchObject({
      status: 503,
      retryAfterMs: 0,
    });
    expect(busy.calls()).toBe(1);

    const gone = scripted(['refused']);
    await expect(clientWith(gone).claim({ factoryId: 'f' })).rejects.toMatchObject({
      kind: 'refused',
      maybeSent: false,
    });
    expect(gone.calls()).toBe(3); // the first try and two retries
  });

  it('reads, heartbeats, renewals and seq’d progress are retried on resets, 503 and 429', async () => {
    const read = scripted(['reset', unavailable(), ok()]);
    expect(await clientWith(read).getJob('job_1')).toEqual(JOB);
    expect(read.calls()).toBe(3);

    const progress = scripted(['reset', ok()]);
    await clientWith(progress).recordProgress('job_1', { factoryId: 'f', leaseEpoch: 1, seq: 4 });
    expect(progress.calls()).toBe(2);

    const unsequenced = scripted(['reset', ok()]);
    await expect(
      clientWith(unsequenced).recordProgress('job_1', { factoryId: 'f', leaseEpoch: 1 }),
    ).rejects.toBeInstanceOf(FleetNetworkError);
    expect(unsequenced.calls()).toBe(1);

    const throttled = scripted([
      new Response('{"code":"RATE_LIMITED","detail":"slow"}', {
        status: 429,
        headers: { 'retry-after': '0' },
      }),
      Response.json({ leaseEpoch: 1, expiresAt: '2030-01-01T00:00:00.000Z', ttlMs: 5 }),
    ]);
    expect(
      (await clientWith(throttled).renewLease('job_1', { factoryId: 'f', leaseEpoch: 1 })).ttlMs,
    ).toBe(5);
    expect(throttled.calls()).toBe(2);
  });

  it('a call without an answer times out; an abort ends it with the caller’s reason', async () => {
    const hang = scripted(['hang']);
    const e = await clientWith(hang, 50)
      .transition('job_1', patch)
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ kind: 'timeout', maybeSent: true });
    expect(hang.calls()).toBe(1);

    const waiting = scripted(['hang']);
    const stop = new AbortController();
    const pending = clientWith(waiting).claim(
      { factoryId: 'f', waitMs: 30_000 },
      { signal: stop.signal },
    );
    stop.abort(new Error('draining'));
    await expect(pending).rejects.toThrow('draining');
  });

  it('a non-problem error answer still becomes a FleetApiError', async () => {
    const proxy = scripted([new Response('<html>bad gateway</html>', { status: 502 })]);
    const e = (await clientWith(proxy)
      .transition('job_1', patch)
      .catch((x: unknown) => x)) as FleetApiError;
    expect(e).toMatchObject({ status: 502, code: 'HTTP_502' });
    expect(e.detail).toContain('bad gateway');
  });
});
