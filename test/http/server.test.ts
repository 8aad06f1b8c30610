/**
 * The standalone server and the `fleet` CLI, as an operator runs them: child processes
 * (`node bin/fleet.mjs ...`) on PORT=0 with a temporary database, spoken to over real
 * HTTP. Every child is killed after each test, whatever happened.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../adapters/http/config.js';
import { buildServer, type FleetServer } from '../../adapters/http/server.js';
import { openSqliteStore } from '../../adapters/store/sqlite/index.js';
import { SimulatedClock } from '../../runtime/clock.js';
import { Coordinator } from '../../runtime/coordinator.js';
import { fleetOnce, killAll, type RunningFleet, startFleet } from '../support/fleet-process.js';
import { must } from '../support/harness.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fleet-server-'));
});
afterEach(killAll);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A fresh database path for one test. */
const freshDb = (): string => join(dir, `t${++n}`, 'fleet.db');

const TOKENS = [
  { token: 'submitter-token-1', productId: 'acme', roles: ['submitter'] },
  { token: 'factory-token-1', productId: 'acme', roles: ['factory'] },
  { token: 'admin-token-1', productId: 'acme', roles: ['admin'] },
];

async function call(
  fleet: RunningFleet,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${fleet.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

type Job = { id: string; stage: string; leaseEpoch: number };
type Events = { items: Array<{ seq: number; type: string }>; nextCursor: string | null };

describe('fleet serve', () => {
  it('submit, claim and ship over HTTP; SIGTERM exits 0; a restart finds the job and its events', async () => {
    const env = { FLEET_DB: freshDb(), FLEET_TOKENS: JSON.stringify(TOKENS) };
    let fleet = await startFleet(env);
    expect(fleet.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${fleet.url}/healthz`)).status).toBe(200);

    const submitted = await call(fleet, 'POST', '/fleet/jobs', 'submitter-token-1', {
      idempotencyKey: 'issue-1',
      bodyMd: '# Fix it',
    });
    expect(submitted.status).toBe(201);
    const jobId = (submitted.json as Job).id;

    const claimed = await call(fleet, 'POST', '/fleet/claim', 'factory-token-1', {
      factoryId: 'f1',
    });
    expect(claimed.status).toBe(200);
    const grant = claimed.json as { job: Job; lease: { leaseEpoch: number } };
    expect(grant.job.id).toBe(jobId);
    for (const to of ['building', 'review', 'testing', 'shipped']) {
      const r = await call(fleet, 'PATCH', `/fleet/jobs/${jobId}`, 'factory-token-1', {
        factoryId: 'f1',
        leaseEpoch: grant.lease.leaseEpoch,
        to,
      });
      expect(r.status, JSON.stringify(r.json)).toBe(200);
    }
    const before = (await call(fleet, 'GET', `/fleet/jobs/${jobId}/events`, 'admin-token-1'))
      .json as Events;
    expect(before.items.length).toBeGreaterThanOrEqual(6);
    expect(before.items.map((e) => e.seq)).toEqual(before.items.map((_, i) => i + 1));

    expect(await fleet.stop()).toBe(0);

    fleet = await startFleet(env);
    const job = await call(fleet, 'GET', `/fleet/jobs/${jobId}`, 'submitter-token-1');
    expect(job.status).toBe(200);
    expect(job.json).toMatchObject({ id: jobId, stage: 'shipped' });
    const after = (await call(fleet, 'GET', `/fleet/jobs/${jobId}/events`, 'submitter-token-1'))
      .json as Events;
    expect(after.items).toEqual(before.items);
    // another product's token sees nothing
    const other = await call(fleet, 'GET', `/fleet/jobs/${jobId}`, 'unknown-token');
    expect(other.status).toBe(401);
    expect(await fleet.stop()).toBe(0);
  });

  it('on SIGTERM, finishes a parked long-poll claim (204) before exiting 0', async () => {
    const fleet = await startFleet({ FLEET_STORE: 'memory', FLEET_TOKENS: JSON.stringify(TOKENS) });
    const parked = call(fleet, 'POST', '/fleet/claim', 'factory-token-1', {
      factoryId: 'f1',
      waitMs: 20_000,
    });
    // let the claim reach the server and park
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    fleet.child.kill('SIGTERM');
    expect((await parked).status).toBe(204);
    expect(await fleet.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('its supervisor reaps an expired lease on its own', async () => {
    const fleet = await startFleet({
      FLEET_DB: freshDb(),
      FLEET_TOKENS: JSON.stringify(TOKENS),
      FLEET_LEASE_MS: '1000',
      FLEET_REAPER_INTERVAL_MS: '100',
    });
    const job = (
      await call(fleet, 'POST', '/fleet/jobs', 'submitter-token-1', {
        idempotencyKey: 'reap-me',
        bodyMd: 'x',
      })
    ).json as Job;
    const claimed = await call(fleet, 'POST', '/fleet/claim', 'factory-token-1', {
      factoryId: 'zombie',
    });
    expect(claimed.status).toBe(200);
    const epoch = (claimed.json as { lease: { leaseEpoch: number } }).lease.leaseEpoch;
    let seen: Job | undefined;
    for (let i = 0; i < 100; i++) {
      seen = (await call(fleet, 'GET', `/fleet/jobs/${job.id}`, 'admin-token-1')).json as Job;
      if (seen.stage === 'queued') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen).toMatchObject({ stage: 'queued', leaseEpoch: epoch + 1 });
    // the zombie is fenced out
    const late = await call(fleet, 'PATCH', `/fleet/jobs/${job.id}`, 'factory-token-1', {
      factoryId: 'zombie',
      leaseEpoch: epoch,
      to: 'building',
    });
    expect(late.status).toBe(409);
    expect(await fleet.stop()).toBe(0);
  });

  it('without tokens, makes a development admin token beside the database (0600), prints it and reuses it', async () => {
    const db = freshDb();
    let fleet = await startFleet({ FLEET_DB: db });
    const line = /^fleet development token \(product "default", roles ([^)]*)\): (\S+)$/m.exec(
      fleet.stdout(),
    );
    expect(line).not.toBeNull();
    expect(line![1]).toContain('admin');
    const token = line![2]!;
    const file = join(db, '..', 'dev-token.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ token, productId: 'default' });
    const r = await call(fleet, 'POST', '/fleet/jobs', token, { idempotencyKey: 'k', bodyMd: 'x' });
    expect(r.status).toBe(201);
    expect(await fleet.stop()).toBe(0);

    fleet = await startFleet({ FLEET_DB: db });
    expect(fleet.stdout()).toContain(`): ${token}\n`);
    expect(fleet.stdout()).toContain('reused from');
    expect(await fleet.stop()).toBe(0);
  });

  it('reads tokens from FLEET_TOKENS_FILE', async () => {
    const file = join(dir, 'tokens.json');
    writeFileSync(file, JSON.stringify([TOKENS[0]]));
    const fleet = await startFleet({ FLEET_STORE: 'memory', FLEET_TOKENS_FILE: file });
    expect(fleet.stdout()).not.toContain('development token');
    const r = await call(fleet, 'POST', '/fleet/jobs', 'submitter-token-1', {
      idempotencyKey: 'k',
      bodyMd: 'x',
    });
    expect(r.status).toBe(201);
    expect(await fleet.stop()).toBe(0);
  });

  it('refuses a second server on the same database, clearly', async () => {
    const env = { FLEET_DB: freshDb(), FLEET_TOKENS: JSON.stringify(TOKENS) };
    const first = await startFleet(env);
    const second = await fleetOnce(['serve'], { ...env, PORT: '0' });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/in use by another Fleet process/);
    expect(second.stderr).not.toMatch(/\n\s+at /);
    expect(await first.stop()).toBe(0);
  });
});

describe('fleet configuration errors', () => {
  it('lists every bad variable, exits 1, no stack trace', async () => {
    const r = await fleetOnce(['serve'], {
      PORT: 'eighty',
      FLEET_STORE: 'postgres',
      FLEET_LEASE_MS: '10',
      FLEET_BODY_LIMIT: 'huge',
      FLEET_TOKENS: '[{"token":"t","productId":"p","roles":["boss"]}]',
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('fleet: the configuration is invalid:');
    expect(r.stderr).toMatch(
      /^ {2}PORT: must be a whole number from 0 to 65535 \(got "eighty"\)$/m,
    );
    expect(r.stderr).toMatch(/^ {2}FLEET_STORE: must be one of sqlite, memory, cosmos/m);
    expect(r.stderr).toMatch(/^ {2}FLEET_LEASE_MS: /m);
    expect(r.stderr).toMatch(/^ {2}FLEET_BODY_LIMIT: /m);
    expect(r.stderr).toMatch(/^ {2}FLEET_TOKENS\[0\]\.roles\[0\]: must be one of/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).not.toContain('listening');
  });

  it('FLEET_TOKENS that is not JSON, and both token variables at once', async () => {
    const [bad, both] = await Promise.all([
      fleetOnce(['serve'], { FLEET_STORE: 'memory', FLEET_TOKENS: '{oops' }),
      fleetOnce(['serve'], { FLEET_STORE: 'memory', FLEET_TOKENS: '[]', FLEET_TOKENS_FILE: 'x' }),
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/FLEET_TOKENS: is not valid JSON/);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/FLEET_TOKENS, FLEET_TOKENS_FILE: set one of them, not both/);
  });

  it('FLEET_STORE=cosmos needs its account, and says so when it cannot reach it', async () => {
    const [missing, unreachable] = await Promise.all([
      fleetOnce(['serve'], { FLEET_STORE: 'cosmos' }),
      fleetOnce(['serve'], {
        FLEET_STORE: 'cosmos',
        // Nothing listens on port 1.
        COSMOS_ENDPOINT: 'https://127.0.0.1:1/',
        COSMOS_KEY: 'a2V5',
      }),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/COSMOS_ENDPOINT: is required/);
    expect(missing.stderr).toMatch(/COSMOS_KEY: is required/);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(
      /cannot open the Cosmos DB store \(database fleet at https:\/\/127\.0\.0\.1:1\/\)/,
    );
    expect(unreachable.stderr).not.toMatch(/\n\s+at /);
  });

  it('an unknown command prints the usage and exits 2', async () => {
    const r = await fleetOnce(['launch']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command launch');
    expect(r.stderr).toContain('usage: fleet <command>');
  });
});

describe('fleet reap --once', () => {
  it('runs one sweep against the configured database: an expired lease is reaped', async () => {
    const db = freshDb();
    // Seed in this process with a clock ten minutes in the past, then let go of the file
    // (one process per SQLite database).
    const past = new SimulatedClock(Date.now() - 10 * 60_000);
    let store = openSqliteStore({ path: db });
    let coord = new Coordinator({ store, clock: past, leaseMs: 60_000 });
    const job = must(await coord.submit('acme', { idempotencyKey: 'stale', bodyMd: 'x' })).job;
    const fresh = must(await coord.submit('acme', { idempotencyKey: 'fresh', bodyMd: 'y' })).job;
    const staleGrant = must(await coord.claimNextJob('acme', { factoryId: 'gone' }))!;
    expect(staleGrant.job.id).toBe(job.id);
    past.set(Date.now()); // the second lease is fresh
    must(await coord.claimNextJob('acme', { factoryId: 'alive' }));
    await coord.drain();
    await store.close();

    const r = await fleetOnce(['reap', '--once', '--json'], {
      FLEET_DB: db,
      FLEET_TOKENS: JSON.stringify(TOKENS),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ reaped: 1, retried: 0 });

    const again = await fleetOnce(['reap', '--once'], { FLEET_DB: db });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^sweep succeeded in \d+ ms: reaped 0, /m);

    store = openSqliteStore({ path: db });
    coord = new Coordinator({ store });
    expect(must(await coord.getJob('acme', job.id))).toMatchObject({
      stage: 'queued',
      leaseEpoch: staleGrant.lease.leaseEpoch + 1,
      holderFactoryId: null,
    });
    expect(must(await coord.getJob('acme', fresh.id))).toMatchObject({
      stage: 'assigned',
      holderFactoryId: 'alive',
    });
    await store.close();
  });
});

describe('buildServer (in process, app.inject)', () => {
  let server: FleetServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  const build = async (env: Record<string, string> = {}) => {
    const config = loadConfig({
      FLEET_STORE: 'memory',
      FLEET_TOKENS: JSON.stringify([
        ...TOKENS,
        { token: 'other-product', productId: 'globex', roles: ['admin'] },
      ]),
      ...env,
    });
    server = await buildServer(config, { logger: false });
    return server;
  };

  it('authenticates bearer tokens: 401 without or with an unknown one, 403 without the role', async () => {
    const { app } = await build();
    const submit = (authorization?: string) =>
      app.inject({
        method: 'POST',
        url: '/fleet/jobs',
        headers: authorization ? { authorization } : {},
        payload: { idempotencyKey: 'k', bodyMd: 'x' },
      });
    expect((await submit()).statusCode).toBe(401);
    expect((await submit('Bearer nope')).statusCode).toBe(401);
    expect((await submit('Basic c3VibWl0dGVyLXRva2VuLTE=')).statusCode).toBe(401);
    expect((await submit('Bearer factory-token-1')).statusCode).toBe(403);
    expect((await submit('bearer submitter-token-1')).statusCode).toBe(201);
    expect((await submit('Bearer admin-token-1')).statusCode).toBe(200);
  });

  it("a token sees only its product's jobs", async () => {
    const { app } = await build();
    const created = await app.inject({
      method: 'POST',
      url: '/fleet/jobs',
      headers: { authorization: 'Bearer submitter-token-1' },
      payload: { idempotencyKey: 'mine', bodyMd: 'x' },
    });
    const id = created.json().id as string;
    const get = (token: string) =>
      app.inject({ url: `/fleet/jobs/${id}`, headers: { authorization: `Bearer ${token}` } });
    expect((await get('admin-token-1')).statusCode).toBe(200);
    expect((await get('other-product')).statusCode).toBe(404);
  });

  it('enforces FLEET_BODY_LIMIT with 413 PAYLOAD_TOO_LARGE', async () => {
    const { app } = await build({ FLEET_BODY_LIMIT: '2048' });
    const r = await app.inject({
      method: 'POST',
      url: '/fleet/jobs',
      headers: { authorization: 'Bearer submitter-token-1', 'content-type': 'application/json' },
      payload: JSON.stringify({ idempotencyKey: 'big', bodyMd: 'x'.repeat(4096) }),
    });
    expect(r.statusCode).toBe(413);
    expect(r.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
  });

  it('feeds supervisor sweeps into /metrics; probes answer', async () => {
    const s = await build();
    expect(await s.supervisor.sweepNow()).toMatchObject({ phase: 'succeeded' });
    const metrics = await s.app.inject({ url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toMatch(/^fleet_sweeps_total\{outcome="succeeded"\} 1$/m);
    expect((await s.app.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await s.app.inject({ url: '/readyz' })).statusCode).toBe(200);
  });

  it('the memory store keeps its development token in memory only', async () => {
    const s = await build({ FLEET_TOKENS: '' });
    expect(s.devToken).toMatchObject({ file: null, grant: { productId: 'default' } });
    const r = await s.app.inject({
      method: 'POST',
      url: '/fleet/jobs',
      headers: { authorization: `Bearer ${s.devToken!.grant.token}` },
      payload: { idempotencyKey: 'k', bodyMd: 'x' },
    });
    expect(r.statusCode).toBe(201);
  });

  it('close() stops the supervisor and closes the store; twice is fine', async () => {
    const s = await build();
    await s.close();
    await s.close();
    await expect(s.supervisor.sweepNow()).rejects.toThrow(/stopped/);
    server = undefined;
  });
});
