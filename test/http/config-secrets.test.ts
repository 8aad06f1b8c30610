/**
 * Issue 10, item 16: configuration errors never echo a secret — no part of a bearer
 * token (`FLEET_TOKENS`, `FLEET_TOKENS_FILE`) and no part of the Cosmos DB account key,
 * whatever the mistake — in `loadConfig`'s problems and on the console of `fleet serve`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../adapters/http/config.js';
import { fleetOnce, killAll } from '../support/fleet-process.js';

afterEach(killAll);

/** A secret with no dictionary word in it, so any 5 characters of it are telling. */
const SECRET = 'Zq7xK9pL2mW4vR8n';

/** Every run of `n` characters of `secret` that `text` contains. */
function leaks(text: string, secret: string, n = 5): string[] {
  const found: string[] = [];
  for (let i = 0; i + n <= secret.length; i++) {
    const part = secret.slice(i, i + n);
    if (text.includes(part)) found.push(part);
  }
  return found;
}

/** The whole text of the ConfigError `env` raises (message and problems). */
function configError(env: Record<string, string>, files: Record<string, string> = {}): string {
  try {
    loadConfig(env, {
      cwd: '/srv/fleet',
      readFile: (path) => {
        const text = files[path];
        if (text === undefined) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
        return text;
      },
    });
  } catch (e) {
    if (e instanceof ConfigError) return `${e.message}\n${e.problems.join('\n')}`;
    throw e;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(Object.keys(env))}`);
}

const grant = (token: unknown) => ({ token, productId: 'acme', roles: ['admin'] });

describe('16: config errors never echo secrets', () => {
  it('16: a malformed FLEET_TOKENS never echoes any part of a token in the config error', () => {
    const malformed: Record<string, string> = {
      'a bare token': SECRET,
      'a bare token in quotes': JSON.stringify(SECRET),
      'truncated JSON': JSON.stringify([grant(SECRET)]).slice(0, -3),
      'JSON with a syntax error after the token': `[{"token":"${SECRET}", productId: "acme"}]`,
      'an object, not an array': JSON.stringify(grant(SECRET)),
      'a token with a space (refused by its pattern)': JSON.stringify([grant(`${SECRET} x`)]),
      'a token that is not a string': `[{"token":${SECRET.length},"productId":"acme","roles":["admin"],"x":"${SECRET}"}]`,
      'the token used as a member name': JSON.stringify([{ [SECRET]: 'acme', roles: ['admin'] }]),
      'a token listed twice': JSON.stringify([grant(SECRET), grant(SECRET)]),
      'an unknown role': JSON.stringify([{ ...grant(SECRET), roles: [SECRET] }]),
    };
    for (const [what, value] of Object.entries(malformed)) {
      const text = configError({ FLEET_TOKENS: value });
      expect(text, what).toMatch(/FLEET_TOKENS/);
      expect(leaks(text, SECRET), `${what}: ${text}`).toEqual([]);
      // The same list from a file.
      const fromFile = configError(
        { FLEET_TOKENS_FILE: 'tokens.json' },
        { '/srv/fleet/tokens.json': value },
      );
      expect(fromFile, what).toMatch(/FLEET_TOKENS_FILE/);
      expect(leaks(fromFile, SECRET), `${what} (file): ${fromFile}`).toEqual([]);
    }
    // The list pasted into the file variable is not printed as "the file name".
    const pasted = configError({ FLEET_TOKENS_FILE: JSON.stringify([grant(SECRET)]) });
    expect(pasted).toMatch(/FLEET_TOKENS_FILE: .*looks like a JSON token list/);
    expect(leaks(pasted, SECRET), pasted).toEqual([]);
    // Still useful: what is expected.
    expect(configError({ FLEET_TOKENS: '[{"token": }]' })).toMatch(
      /FLEET_TOKENS: is not valid JSON.*; expected a JSON array of \{ "token", "productId", "roles" \}/,
    );
  });

  it('16: config errors never echo COSMOS_KEY, even pasted into the wrong variable', () => {
    const cosmos = { FLEET_STORE: 'cosmos' };
    for (const env of [
      // The key in the endpoint variable, and the other way round.
      { ...cosmos, COSMOS_ENDPOINT: SECRET, COSMOS_KEY: SECRET },
      { ...cosmos, COSMOS_ENDPOINT: `${SECRET}==` },
      // A URL that carries the key as its password (or user name).
      {
        ...cosmos,
        COSMOS_ENDPOINT: `https://acct:${SECRET}@acct.documents.azure.com/`,
        COSMOS_KEY: 'k',
      },
      {
        ...cosmos,
        COSMOS_ENDPOINT: `https://${SECRET}@acct.documents.azure.com/`,
        COSMOS_KEY: 'k',
      },
    ]) {
      const text = configError(env);
      expect(text).toMatch(/COSMOS_ENDPOINT: must/);
      expect(leaks(text, SECRET), text).toEqual([]);
    }
  });

  it('16: fleet serve with FLEET_TOKENS=sometoken exits 1 and prints no part of it; nor the Cosmos DB key', async () => {
    const [bare, secret, cosmos] = await Promise.all([
      fleetOnce(['serve'], { FLEET_STORE: 'memory', FLEET_TOKENS: 'sometoken' }),
      fleetOnce(['serve'], { FLEET_STORE: 'memory', FLEET_TOKENS: `[{"token":"${SECRET}"` }),
      fleetOnce(['serve'], {
        FLEET_STORE: 'cosmos',
        // Nothing listens on port 1: the open fails, and its message is printed.
        COSMOS_ENDPOINT: 'https://127.0.0.1:1/',
        COSMOS_KEY: SECRET,
      }),
    ]);
    expect(bare.code).toBe(1);
    expect(bare.stderr).toMatch(/FLEET_TOKENS: is not valid JSON/);
    expect(`${bare.stdout}${bare.stderr}`).not.toContain('sometoken');
    expect(secret.code).toBe(1);
    expect(leaks(`${secret.stdout}${secret.stderr}`, SECRET)).toEqual([]);
    expect(cosmos.code).toBe(1);
    expect(cosmos.stderr).toMatch(/cannot open the Cosmos DB store/);
    expect(leaks(`${cosmos.stdout}${cosmos.stderr}`, SECRET)).toEqual([]);
  });
});
