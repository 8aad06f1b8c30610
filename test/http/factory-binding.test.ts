/**
 * Issue 10, "decide and document": a factory token of a product may act as any factory
 * id of that product — fencing protects a job against stale holders, not against a
 * colleague with a factory token. A grant may therefore bind its token to factory ids
 * (`factoryIds`): every factory call naming another id is `403 FORBIDDEN` and changes
 * nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../adapters/http/config.js';
import { buildServer, type FleetServer } from '../../adapters/http/server.js';
import { dumpProduct } from './support.js';

const TOKENS = JSON.stringify([
  { token: 'submit-1', productId: 'acme', roles: ['submitter'] },
  { token: 'bound-a', productId: 'acme', roles: ['factory'], factoryIds: ['fa', 'fa2'] },
  { token: 'bound-b', productId: 'acme', roles: ['factory'], factoryIds: ['fb'] },
  { token: 'any-factory', productId: 'acme', roles: ['factory'] },
]);

let server: FleetServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('factory tokens and factory ids', () => {
  it('a token bound to factory ids may act only as those; an unbound one as any of its product', async () => {
    server = await buildServer(loadConfig({ FLEET_STORE: 'memory', FLEET_TOKENS: TOKENS }), {
      logger: false,
    });
    const app = server.app;
    const call = (method: 'POST' | 'PATCH', url: string, token: string, body: unknown) =>
      app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${token}` },
        payload: body as object,
      });
    await call('POST', '/fleet/jobs', 'submit-1', { idempotencyKey: 'one', bodyMd: 'x' });
    await call('POST', '/fleet/jobs', 'submit-1', { idempotencyKey: 'two', bodyMd: 'y' });

    // Bound: another factory id is refused on claim and heartbeat, before anything happens.
    for (const [url, body] of [
      ['/fleet/claim', { factoryId: 'fb' }],
      ['/fleet/factories/heartbeat', { factoryId: 'fb', capabilities: [], health: 'ok' }],
    ] as const) {
      const res = await call('POST', url, 'bound-a', body);
      expect(res.statusCode, res.body).toBe(403);
      expect(res.json()).toMatchObject({ code: 'FORBIDDEN', factoryId: 'fb' });
    }
    const claimed = await call('POST', '/fleet/claim', 'bound-a', { factoryId: 'fa' });
    expect(claimed.statusCode, claimed.body).toBe(200);
    const { job, lease } = claimed.json() as { job: { id: string }; lease: { leaseEpoch: number } };
    const before = await dumpProduct(server.store, 'acme');

    // Another bound token cannot act as fa on its job, whatever it knows of the lease.
    const me = { factoryId: 'fa', leaseEpoch: lease.leaseEpoch };
    for (const [method, url, body] of [
      ['PATCH', `/fleet/jobs/${job.id}`, { ...me, to: 'building' }],
      ['POST', `/fleet/jobs/${job.id}/lease/renew`, me],
      ['POST', `/fleet/jobs/${job.id}/lease/release`, me],
      ['POST', `/fleet/jobs/${job.id}/progress`, { ...me, checkpoint: { wipBranch: 'x' } }],
    ] as const) {
      const res = await call(method, url, 'bound-b', body);
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBe(403);
    }
    expect(await dumpProduct(server.store, 'acme')).toEqual(before);

    // The decision, documented: an unbound factory token of the product may act as fa.
    const colleague = await call('PATCH', `/fleet/jobs/${job.id}`, 'any-factory', {
      ...me,
      to: 'building',
    });
    expect(colleague.statusCode, colleague.body).toBe(200);
    // And the holder itself, bound to fa, goes on.
    const own = await call('PATCH', `/fleet/jobs/${job.id}`, 'bound-a', { ...me, to: 'review' });
    expect(own.statusCode, own.body).toBe(200);
  });

  it('factoryIds must name at least one factory', () => {
    const bad = JSON.stringify([
      { token: 't', productId: 'p', roles: ['factory'], factoryIds: [] },
    ]);
    expect(() => loadConfig({ FLEET_TOKENS: bad })).toThrow(ConfigError);
    expect(() => loadConfig({ FLEET_TOKENS: bad })).toThrow(
      /FLEET_TOKENS\[0\]\.factoryIds: must name at least one factory/,
    );
  });
});
