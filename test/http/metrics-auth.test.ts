/**
 * Issue 14: `/metrics` can require a token of its own (`metricsToken`,
 * `FLEET_METRICS_TOKEN`); without one it stays open.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../adapters/http/config.js';
import { buildServer, type FleetServer } from '../../adapters/http/server.js';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { buildTestApp, closeTestApp, expectProblem, type TestApp } from './support.js';

const SECRET = 'scrape-7f3a9c2e41d8b6';

let t: TestApp | undefined;
let server: FleetServer | undefined;
afterEach(async () => {
  if (t) await closeTestApp(t);
  t = undefined;
  await server?.close();
  server = undefined;
});

describe('/metrics with a metrics token', () => {
  it('answers only Authorization: Bearer <that token>; anything else is a 401 problem', async () => {
    t = await buildTestApp({ store: createMemoryStore(), metricsToken: SECRET });
    const ok = await t.call('GET', '/metrics', { token: SECRET });
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toContain('fleet_claims_total');
    // No credentials, a wrong one, one of the right length, a prefix, Basic, and a
    // Fleet admin token (which acts for one product; the metrics are all of them).
    for (const token of [null, 'nope', `${SECRET.slice(0, -1)}x`, SECRET.slice(0, 8), 'admin']) {
      const res = await t.call('GET', '/metrics', { token });
      const problem = expectProblem(res, 'UNAUTHENTICATED');
      expect(res.headers['www-authenticate']).toBe('Bearer realm="fleet"');
      expect(problem.detail).not.toContain(SECRET);
      expect(res.body).not.toContain('fleet_claims_total');
    }
    const basic = await t.call('GET', '/metrics', {
      token: null,
      headers: { authorization: `Basic ${Buffer.from(`x:${SECRET}`).toString('base64')}` },
    });
    expectProblem(basic, 'UNAUTHENTICATED');
    // The probes stay open.
    expect((await t.call('GET', '/healthz', { token: null })).statusCode).toBe(200);
    expect((await t.call('GET', '/readyz', { token: null })).statusCode).toBe(200);
    // The OpenAPI document says so.
    const doc = (await t.call('GET', '/docs/json', { token: null })).json();
    expect(doc.paths['/metrics'].get.security).toEqual([{ bearerAuth: [] }]);
    expect(doc.paths['/metrics'].get.responses['401']).toBeDefined();
  });

  it('without one, /metrics stays open, as before', async () => {
    t = await buildTestApp({ store: createMemoryStore() });
    const res = await t.call('GET', '/metrics', { token: null });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('fleet_claims_total');
    const doc = (await t.call('GET', '/docs/json', { token: null })).json();
    expect(doc.paths['/metrics'].get.security).toEqual([]);
  });

  it('the standalone server reads FLEET_METRICS_TOKEN; never prints a bad one', async () => {
    server = await buildServer(loadConfig({ FLEET_STORE: 'memory', FLEET_METRICS_TOKEN: SECRET }), {
      logger: false,
    });
    const get = (authorization?: string) =>
      server!.app.inject({
        method: 'GET',
        url: '/metrics',
        headers: authorization === undefined ? {} : { authorization },
      });
    expect((await get()).statusCode).toBe(401);
    expect((await get(`Bearer ${SECRET}`)).statusCode).toBe(200);
    expect(loadConfig({}).metricsToken).toBeNull();

    for (const bad of ['short-secret', `has space ${SECRET}`]) {
      let problems: readonly string[] = [];
      try {
        loadConfig({ FLEET_METRICS_TOKEN: bad });
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        problems = e.problems;
      }
      expect(problems).toEqual([
        'FLEET_METRICS_TOKEN: must be 16 to 1000 printable ASCII characters without spaces (the value is not shown: it is a secret)',
      ]);
    }
  });
});
