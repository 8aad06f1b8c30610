/**
 * Issue 14: stale factories are found across products, not only in the products the
 * configured tokens name. A server whose tokens all act for `acme` reports a stale
 * factory of `beta` in its sweep report and in `/metrics` (`fleet_stale_factories`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../adapters/http/config.js';
import { buildServer, type FleetServer } from '../../adapters/http/server.js';
import { SimulatedClock } from '../../runtime/clock.js';
import { unwrap } from '../../runtime/errors.js';

const TOKENS = JSON.stringify([
  { token: 'acme-admin-token', productId: 'acme', roles: ['admin', 'factory'] },
]);

let server: FleetServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const staleGauge = async (s: FleetServer): Promise<number> => {
  const res = await s.app.inject({ url: '/metrics' });
  expect(res.statusCode).toBe(200);
  const line = res.body.split('\n').find((l) => l.startsWith('fleet_stale_factories '));
  expect(line, res.body).toBeDefined();
  return Number(line?.split(' ')[1]);
};

describe('the stale-factory check of a server', () => {
  it('reports a stale factory of a product no token names', async () => {
    const clock = new SimulatedClock(Date.parse('2026-03-01T00:00:00.000Z'));
    server = await buildServer(
      loadConfig({
        FLEET_STORE: 'memory',
        FLEET_TOKENS: TOKENS,
        FLEET_REAPER_INTERVAL_MS: '3600000',
      }),
      { logger: false, clock },
    );
    const beat = (productId: string, factoryId: string) =>
      server!.coordinator.heartbeat(productId, { factoryId, capabilities: [], health: 'ok' });
    unwrap(await beat('beta', 'orphan'));
    unwrap(await beat('acme', 'named'));
    const first = await server.supervisor.sweepNow();
    expect(first).toMatchObject({ phase: 'succeeded', report: { staleFactories: 0 } });
    expect(await staleGauge(server)).toBe(0);

    clock.advance(60_000); // three default intervals (10 s) and more without a beat
    unwrap(await beat('acme', 'named'));
    const second = await server.supervisor.sweepNow();
    expect(second).toMatchObject({ phase: 'succeeded', report: { staleFactories: 1 } });
    expect(await staleGauge(server)).toBe(1);
    const beta = unwrap(await server.coordinator.listFactories('beta')).items;
    expect(beta).toEqual([expect.objectContaining({ factoryId: 'orphan', stale: true })]);
  });
});
