/**
 * A host service embeds Fleet: its own request decoration decides who calls, it
 * registers `fleetPlugin` without a prefix, and everything works end to end, while the
 * host's own routes, body parsers, error format and not-found handler stay the host's.
 * Also: registration under a prefix, and options checked at startup.
 */
import Fastify, { type FastifyError, type FastifyRequest } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { type FleetAuth, type FleetRole, fleetPlugin } from '../../adapters/http/index.js';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { Coordinator, SimulatedClock } from '../../runtime/index.js';

/** The host's request, with the user its own auth hook decorates it with. */
type HostRequest = FastifyRequest & { user: { tenant: string; scopes: string[] } | null };

const USERS: Record<string, { tenant: string; scopes: string[] }> = {
  'key-alice': { tenant: 'acme', scopes: ['jobs:write', 'jobs:read'] },
  'key-robot': { tenant: 'acme', scopes: ['worker'] },
};

/** The host's own auth: an API key header, decorated onto the request. */
function hostApp() {
  const app = Fastify();
  app.decorateRequest('user', null);
  app.addHook('onRequest', async (request) => {
    const key = request.headers['x-api-key'];
    (request as HostRequest).user = typeof key === 'string' ? (USERS[key] ?? null) : null;
  });
  // The host's own error format and not-found handler (set before Fleet registers).
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    reply.code(error.statusCode ?? 500).send({ hostError: error.message });
  });
  app.setNotFoundHandler((_request, reply) => {
    reply.code(404).send({ host: 'nothing here' });
  });
  app.post('/host/echo', async (request) => ({ echo: request.body }));
  return app;
}

/** Maps the host's user to Fleet's roles. */
function fromHostUser(request: FastifyRequest): FleetAuth | null {
  const user = (request as HostRequest).user;
  if (!user) return null;
  const roles: FleetRole[] = [];
  if (user.scopes.includes('jobs:write')) roles.push('submitter');
  if (user.scopes.includes('worker')) roles.push('factory');
  return { productId: user.tenant, roles, subject: `host:${user.tenant}` };
}

describe('a host app embeds fleetPlugin', () => {
  const apps: { close(): Promise<unknown> }[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });

  it('prefix-free, behind the host’s own auth: end to end, host routes untouched', async () => {
    const app = hostApp();
    apps.push(app);
    const store = createMemoryStore();
    await app.register(fleetPlugin, {
      store,
      clock: new SimulatedClock(),
      authenticate: fromHostUser,
    });
    await app.ready();
    const as = (key: string | null) => (key ? { 'x-api-key': key } : {});

    const submitted = await app.inject({
      method: 'POST',
      url: '/fleet/jobs',
      headers: as('key-alice'),
      payload: { idempotencyKey: 'host-1', bodyMd: 'build it' },
    });
    expect(submitted.statusCode).toBe(201);
    const job = submitted.json();
    expect(job.productId).toBe('acme');

    const claimed = await app.inject({
      method: 'POST',
      url: '/fleet/claim',
      headers: as('key-robot'),
      payload: { factoryId: 'robot-1' },
    });
    expect(claimed.statusCode).toBe(200);
    const epoch = claimed.json().lease.leaseEpoch;
    for (const to of ['building', 'review', 'testing', 'shipped']) {
      const res = await app.inject({
        method: 'PATCH',
        url: `/fleet/jobs/${job.id}`,
        headers: as('key-robot'),
        payload: { factoryId: 'robot-1', leaseEpoch: epoch, to },
      });
      expect(res.statusCode, res.body).toBe(200);
    }
    const events = await app.inject({
      method: 'GET',
      url: `/fleet/jobs/${job.id}/events`,
      headers: as('key-alice'),
    });
    expect(events.json().items[0]).toMatchObject({ type: 'submitted', actor: 'host:acme' });
    expect(events.json().items.at(-1).data.to).toBe('shipped');

    // Fleet's auth answers come from the host's decision.
    const anonymous = await app.inject({ method: 'GET', url: '/fleet/jobs', headers: as(null) });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json().code).toBe('UNAUTHENTICATED');
    const wrongRole = await app.inject({
      method: 'POST',
      url: '/fleet/claim',
      headers: as('key-alice'),
      payload: { factoryId: 'x' },
    });
    expect(wrongRole.json().code).toBe('FORBIDDEN');

    // The host's own routes keep the host's parsers, error format and 404.
    const text = await app.inject({
      method: 'POST',
      url: '/host/echo',
      headers: { 'content-type': 'text/plain' },
      payload: 'plain text is fine here',
    });
    expect(text.json()).toEqual({ echo: 'plain text is fine here' });
    const badJson = await app.inject({
      method: 'POST',
      url: '/host/echo',
      headers: { 'content-type': 'application/json' },
      payload: '{nope',
    });
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json()).toHaveProperty('hostError');
    const hostMissing = await app.inject({ method: 'GET', url: '/elsewhere' });
    expect(hostMissing.json()).toEqual({ host: 'nothing here' });
    // ...while unknown routes under /fleet are Fleet's problem documents.
    const fleetMissing = await app.inject({
      method: 'GET',
      url: '/fleet/elsewhere',
      headers: as('key-alice'),
    });
    expect(fleetMissing.statusCode).toBe(404);
    expect(fleetMissing.headers['content-type']).toMatch(/^application\/problem\+json/);
    // And the probes and docs are there.
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/docs/json' })).statusCode).toBe(200);
  });

  it('under a prefix: every path, Location and the OpenAPI paths carry it', async () => {
    const app = Fastify();
    apps.push(app);
    await app.register(fleetPlugin, {
      store: createMemoryStore(),
      authenticate: () => ({ productId: 'p', roles: ['submitter'] }),
      prefix: '/api',
    } as Parameters<typeof fleetPlugin>[1]);
    await app.ready();
    const res = await app.inject({
      method: 'POST',
      url: '/api/fleet/jobs',
      payload: { idempotencyKey: 'k', bodyMd: 'x' },
    });
    expect(res.statusCode).toBe(201);
    expect(res.headers.location).toBe(`/api/fleet/jobs/${res.json().id}`);
    expect(
      (await app.inject({ method: 'GET', url: res.headers.location as string })).statusCode,
    ).toBe(200);
    const doc = (await app.inject({ method: 'GET', url: '/api/docs/json' })).json();
    expect(Object.keys(doc.paths)).toContain('/api/fleet/jobs/{id}');
    const missing = await app.inject({ method: 'GET', url: '/api/nope' });
    expect(missing.json().code).toBe('NOT_FOUND');
  });

  it('refuses bad options at startup', async () => {
    const store = createMemoryStore();
    const authenticate = () => null;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ authenticate }, /either a coordinator or a store/],
      [
        { store, coordinator: new Coordinator({ store }), authenticate },
        /either a coordinator or a store/,
      ],
      [
        { coordinator: new Coordinator({ store }), leaseMs: 5000, authenticate },
        /clock and leaseMs/,
      ],
      [{ store }, /authenticate/],
      [{ store, authenticate, bodyLimit: -1 }, /bodyLimit/],
      [{ store, authenticate, leaseMs: 10 }, /leaseMs/],
    ];
    for (const [options, message] of cases) {
      const app = Fastify();
      app.register(fleetPlugin, options as unknown as Parameters<typeof fleetPlugin>[1]);
      await expect(app.ready()).rejects.toThrow(message);
      await app.close().catch(() => {});
    }
  });
});
