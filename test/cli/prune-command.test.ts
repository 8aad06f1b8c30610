/**
 * `fleet prune --older-than AGE [--dry-run] [--json]` (adapters/cli/prune-command.ts)
 * against a standalone server in this process on a temp SQLite file, listening on
 * 127.0.0.1, with a simulated clock (jobs age by advancing it, never by waiting).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CliError } from '../../adapters/cli/output.js';
import { prune } from '../../adapters/cli/prune-command.js';
import { FleetApiError } from '../../adapters/client/index.js';
import { loadConfig } from '../../adapters/http/config.js';
import { buildServer, type FleetServer, listen } from '../../adapters/http/server.js';
import { SimulatedClock } from '../../runtime/index.js';

const DAY = 86_400_000;
const TOKENS = [
  { token: 'ops-token', productId: 'acme', roles: ['admin'], operator: true, subject: 'ops' },
  { token: 'admin-token', productId: 'acme', roles: ['admin'], subject: 'acme-admin' },
];

let root: string;
let server: FleetServer;
let url: string;
const clock = new SimulatedClock();
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fleet-cli-prune-'));
  writeFileSync(join(root, 'ops-token'), 'ops-token');
  writeFileSync(join(root, 'admin-token'), 'admin-token');
  server = await buildServer(
    loadConfig({
      FLEET_TOKENS: JSON.stringify(TOKENS),
      FLEET_DB: join(root, 'fleet.db'),
      FLEET_RETENTION: '0',
      PORT: '0',
    }),
    { logger: false, clock },
  );
  url = await listen(server);
});
afterAll(async () => {
  await server.close();
  rmSync(root, { recursive: true, force: true });
});

let out: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  out = [];
});
const captureStdout = () =>
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });

/** Submits and cancels a job through the coordinator: it ends in dead_letter now. */
async function finishedJob(key: string): Promise<string> {
  const c = server.coordinator;
  const r = await c.submit('acme', { idempotencyKey: key, bodyMd: 'x' });
  if (!r.ok) throw r.error;
  const cancelled = await c.cancel('acme', r.value.job.id);
  if (!cancelled.ok) throw cancelled.error;
  return r.value.job.id;
}

describe('fleet prune', () => {
  it('--dry-run counts; then it prunes, and says what went', async () => {
    const ids = [await finishedJob('a'), await finishedJob('b'), await finishedJob('c')];
    clock.advance(8 * DAY);
    const young = await finishedJob('young');
    const tokenFile = join(root, 'ops-token');

    captureStdout();
    expect(await prune({ url, tokenFile, olderThan: '7d', dryRun: true, json: true })).toBe(0);
    const dry = JSON.parse(out.join('')) as { pruned: number; dryRun: boolean };
    expect(dry).toMatchObject({ dryRun: true, pruned: 3, nextCursor: null });
    for (const id of ids) expect((await server.coordinator.getJob('acme', id)).ok).toBe(true);

    out = [];
    expect(await prune({ url, tokenFile, olderThan: '7d' })).toBe(0);
    const line = out.join('');
    expect(line).toMatch(/^fleet prune: pruned 3 jobs finished before /);
    expect(line).toContain('0 shipped, 3 dead_letter');
    expect(line).toContain('kept 0');
    for (const id of ids) expect((await server.coordinator.getJob('acme', id)).ok).toBe(false);
    expect((await server.coordinator.getJob('acme', young)).ok).toBe(true);
  });

  it('an admin without operator is refused (403); a bad age is refused (400, or a usage error)', async () => {
    await expect(
      prune({ url, tokenFile: join(root, 'admin-token'), olderThan: '7d' }),
    ).rejects.toMatchObject({ status: 403, code: 'FORBIDDEN' });
    const bad = await prune({ url, tokenFile: join(root, 'ops-token'), olderThan: 'soon' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(bad).toBeInstanceOf(FleetApiError);
    expect(bad).toMatchObject({ status: 400, code: 'VALIDATION' });
    await expect(
      prune({ url, tokenFile: join(root, 'ops-token'), olderThan: ' ' }),
    ).rejects.toBeInstanceOf(CliError);
  });
});
