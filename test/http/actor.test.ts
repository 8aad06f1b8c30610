/**
 * Issue 10, item 18: the event `actor` of a token without a `subject` is a keyed id
 * (`adapters/http/actor-key.ts`), never an unkeyed hash of the token that a reader of
 * the product could check guesses against; it is stable across restarts and the same in
 * every process sharing the database.
 */
import { createHash, getHashes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ACTOR_KEY_FILE } from '../../adapters/http/actor-key.js';
import { loadConfig } from '../../adapters/http/config.js';
import { buildServer, type FleetServer } from '../../adapters/http/server.js';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import type { DocumentStore } from '../../runtime/index.js';

const TOKEN = 'weak-token-1';
const TOKENS = JSON.stringify([
  { token: TOKEN, productId: 'acme', roles: ['submitter'] },
  { token: 'named-token-1', productId: 'acme', roles: ['submitter'], subject: 'ci-bot' },
  { token: 'reader-token-1', productId: 'acme', roles: ['admin'] },
]);

let dir: string;
const servers: FleetServer[] = [];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fleet-actor-'));
});
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function start(env: Record<string, string>, store?: DocumentStore): Promise<FleetServer> {
  const server = await buildServer(loadConfig({ FLEET_TOKENS: TOKENS, ...env }), {
    logger: false,
    ...(store ? { store } : {}),
  });
  servers.push(server);
  return server;
}

/** Submits a job as `token` and answers the actor of its `submitted` event, as a reader sees it. */
async function actorOf(server: FleetServer, token: string, key: string): Promise<string> {
  const created = await server.app.inject({
    method: 'POST',
    url: '/fleet/jobs',
    headers: { authorization: `Bearer ${token}` },
    payload: { idempotencyKey: key, bodyMd: 'x' },
  });
  expect(created.statusCode, created.body).toBeLessThan(300);
  const events = await server.app.inject({
    url: `/fleet/jobs/${created.json().id}/events`,
    headers: { authorization: 'Bearer reader-token-1' },
  });
  const first = events.json().items[0] as { type: string; actor: string };
  expect(first.type).toBe('submitted');
  return first.actor;
}

/** Every unkeyed digest of `token` this Node knows, in hex, base64 and base64url. */
function unkeyedDigests(token: string): string[] {
  const out: string[] = [];
  for (const algorithm of getHashes()) {
    let digest: Buffer;
    try {
      digest = createHash(algorithm).update(token).digest();
    } catch {
      continue; // XOFs and algorithms this build cannot run
    }
    out.push(digest.toString('hex'), digest.toString('base64'), digest.toString('base64url'));
  }
  return out;
}

describe('18: token actors', () => {
  it('18: the actor of a token without a subject is no unkeyed hash prefix of the token', async () => {
    const server = await start({ FLEET_STORE: 'memory' });
    const actor = await actorOf(server, TOKEN, 'a');
    const id = actor.replace(/^token:/, '');
    const digests = unkeyedDigests(TOKEN);
    expect(digests.length).toBeGreaterThan(10);
    for (const d of digests) {
      expect(d.toLowerCase().startsWith(id.slice(0, 8)), `a prefix of a plain digest: ${d}`).toBe(
        false,
      );
    }
    expect(actor).not.toContain(TOKEN);
    expect(actor).toMatch(/^token:[0-9a-f]{16}$/);
    // A grant's subject is the actor as it is.
    expect(await actorOf(server, 'named-token-1', 'b')).toBe('ci-bot');
  });

  it('18: FLEET_ACTOR_KEY keys it: the same key gives the same actor in every process, another key another', async () => {
    const shared = createMemoryStore(); // one database, two processes on it
    const key = { FLEET_STORE: 'memory', FLEET_ACTOR_KEY: 'an-actor-key-of-32-characters...' };
    const one = await start(key, shared);
    const two = await start(key, shared);
    const a1 = await actorOf(one, TOKEN, 'k1');
    const a2 = await actorOf(two, TOKEN, 'k2');
    expect(a1).toMatch(/^token:[0-9a-f]{16}$/);
    expect(a2).toBe(a1);
    const other = await start({ ...key, FLEET_ACTOR_KEY: 'another-actor-key-32-characters.' });
    expect(await actorOf(other, TOKEN, 'k3')).not.toBe(a1);
  });

  it('18: with Cosmos DB every process derives the same key from the account key', async () => {
    // The account is never reached: each "process" gets the shared store directly, and
    // the configuration is what derives the key.
    const shared = createMemoryStore();
    const cosmos = {
      FLEET_STORE: 'cosmos',
      COSMOS_ENDPOINT: 'https://acct.documents.azure.com:443/',
      COSMOS_KEY: 'YWNjb3VudCBrZXk=',
    };
    const one = await start(cosmos, shared);
    const two = await start(cosmos, shared);
    const a1 = await actorOf(one, TOKEN, 'c1');
    expect(await actorOf(two, TOKEN, 'c2')).toBe(a1);
    const rotated = await start({ ...cosmos, COSMOS_KEY: 'b3RoZXIga2V5' }, shared);
    expect(await actorOf(rotated, TOKEN, 'c3')).not.toBe(a1);
    const pinned = await start(
      { ...cosmos, COSMOS_KEY: 'b3RoZXIga2V5', FLEET_ACTOR_KEY: 'x'.repeat(20) },
      shared,
    );
    const pinned2 = await start({ ...cosmos, FLEET_ACTOR_KEY: 'x'.repeat(20) }, shared);
    expect(await actorOf(pinned, TOKEN, 'c4')).toBe(await actorOf(pinned2, TOKEN, 'c5'));
  });

  it('18: a short FLEET_ACTOR_KEY is refused, and not printed', () => {
    expect(() => loadConfig({ FLEET_ACTOR_KEY: 'Qz8short' })).toThrow(
      /FLEET_ACTOR_KEY: must be 16 to 1000 printable ASCII characters/,
    );
    expect(() => loadConfig({ FLEET_ACTOR_KEY: 'Qz8short' })).not.toThrow(/Qz8short/);
  });

  it('18: with SQLite the key is kept beside the database (0600): the actor survives a restart', async () => {
    const db = join(dir, 'restart', 'fleet.db');
    const first = await start({ FLEET_DB: db });
    const before = await actorOf(first, TOKEN, 'r1');
    await first.close();
    servers.splice(servers.indexOf(first), 1);
    expect((statSync(join(dir, 'restart', ACTOR_KEY_FILE)).mode & 0o777).toString(8)).toBe('600');
    const second = await start({ FLEET_DB: db });
    expect(await actorOf(second, TOKEN, 'r2')).toBe(before);
  });
});
