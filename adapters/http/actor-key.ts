/**
 * Who a bearer token is, in event `actor`s and logs, when its grant names no `subject`.
 *
 * Decision (issue 10, item 18). Every reader of a product sees the actors of its events,
 * so an actor must say nothing about the token itself: it used to be a 48-bit prefix of
 * the token's plain SHA-256, against which a reader could check guesses of a weak token
 * offline. It is now `token:` and 64 bits of HMAC-SHA256(actor key, token): without the
 * key, the actor tells nothing. The key must be the same on every restart and in every
 * process sharing the database (or one token would show as several actors), so it is:
 * 1. `FLEET_ACTOR_KEY` when set (give every process the same value);
 * 2. else, with Cosmos DB, derived from the account key every process already shares:
 *    HMAC-SHA256(COSMOS_KEY, "fleet actor key v1") — processes on different account keys
 *    (a key rotation) then name one token differently: set `FLEET_ACTOR_KEY` for those;
 * 3. else, with SQLite (one process per database), 32 random bytes kept in `actor-key`
 *    beside the database (mode 0600), made on first start;
 * 4. else (memory store: nothing outlives the process) random per process.
 * A grant's `subject`, when given, is the actor as it is (name your tokens).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FleetConfig } from './config.js';

/** The actor key's file name, beside the SQLite database. */
export const ACTOR_KEY_FILE = 'actor-key';

/** The label the Cosmos DB account key is hashed with to make the actor key. */
const COSMOS_LABEL = 'fleet actor key v1';

/** Reads the key kept beside the database, or makes it (0600; never overwritten). */
function keyFile(file: string): Buffer {
  try {
    const text = readFileSync(file, 'utf8').trim();
    if (/^[A-Za-z0-9_-]{43}$/.test(text)) return Buffer.from(text, 'base64url');
    throw new Error(`${file} does not hold an actor key; delete it to make a new one`);
  } catch (e) {
    if ((e as { code?: string }).code !== 'ENOENT') throw e;
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  try {
    // 'wx': of two processes starting at once, the second reads the first one's key.
    writeFileSync(file, `${key.toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as { code?: string }).code === 'EEXIST') return keyFile(file);
    throw e;
  }
  return key;
}

/**
 * The key of token actors for this configuration (see the file header for the order).
 *
 * @throws Error when the SQLite key file cannot be read or written.
 */
export function actorKeyFor(config: Pick<FleetConfig, 'actorKey' | 'store'>): Buffer {
  if (config.actorKey !== null) return Buffer.from(config.actorKey, 'utf8');
  const store = config.store;
  switch (store.kind) {
    case 'cosmos':
      return createHmac('sha256', store.key).update(COSMOS_LABEL).digest();
    case 'sqlite':
      return keyFile(join(dirname(store.path), ACTOR_KEY_FILE));
    case 'memory':
      return randomBytes(32);
  }
}

/** The actor of a token without a subject: `token:` and 16 hex digits of its keyed hash. */
export function tokenActor(key: Buffer, token: string): string {
  return `token:${createHmac('sha256', key).update(token).digest('hex').slice(0, 16)}`;
}
