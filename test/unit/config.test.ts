import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../adapters/http/config.js';

const TOKENS = JSON.stringify([
  { token: 'tok-1', productId: 'acme', roles: ['submitter', 'factory', 'submitter'] },
]);

function problems(env: Record<string, string>, readFile?: (p: string) => string): string[] {
  try {
    loadConfig(env, { cwd: '/srv/fleet', ...(readFile ? { readFile } : {}) });
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({}, { cwd: '/srv/fleet' });
    expect(c).toEqual({
      host: '127.0.0.1',
      port: 8080,
      store: { kind: 'sqlite', path: resolve('/srv/fleet', 'data/fleet.db') },
      tokens: { source: 'dev' },
      leaseMs: 60_000,
      reaperIntervalMs: 5000,
      bodyLimit: 1024 * 1024,
      logLevel: 'info',
      claimSpread: 1,
      requestTimeoutMs: 45_000,
      connectionTimeoutMs: 60_000,
      maxParkedClaims: 64,
      listPageBytes: 4 * 1024 * 1024,
      metricsToken: null,
      rateLimit: null,
      // Beside the database.
      backupDir: resolve('/srv/fleet', 'data'),
      actorKey: null,
      warnings: [],
      retentionMs: 30 * 86_400_000,
    });
  });

  it('reads every variable; an empty one counts as unset', () => {
    const c = loadConfig(
      {
        HOST: '0.0.0.0',
        PORT: '0',
        FLEET_STORE: 'memory',
        FLEET_DB: '',
        FLEET_TOKENS: TOKENS,
        FLEET_LEASE_MS: '1000',
        FLEET_REAPER_INTERVAL_MS: '250',
        FLEET_BODY_LIMIT: '2MiB',
        FLEET_LOG_LEVEL: 'debug',
        FLEET_CLAIM_SPREAD: '3',
      },
      { cwd: '/srv/fleet' },
    );
    expect(c).toMatchObject({
      host: '0.0.0.0',
      port: 0,
      store: { kind: 'memory' },
      leaseMs: 1000,
      reaperIntervalMs: 250,
      bodyLimit: 2 * 1024 * 1024,
      logLevel: 'debug',
      claimSpread: 3,
      tokens: {
        source: 'env',
        grants: [{ token: 'tok-1', productId: 'acme', roles: ['submitter', 'factory'] }],
      },
    });
    expect(loadConfig({ PORT: '' }).port).toBe(8080);
    expect(loadConfig({ FLEET_BODY_LIMIT: '4096' }).bodyLimit).toBe(4096);
    expect(loadConfig({ FLEET_BODY_LIMIT: '512 KiB' }).bodyLimit).toBe(512 * 1024);
  });

  it('resolves FLEET_DB and FLEET_TOKENS_FILE against the working folder', () => {
    const read: string[] = [];
    const c = loadConfig(
      { FLEET_DB: 'db/f.db', FLEET_TOKENS_FILE: 'secrets/tokens.json' },
      {
        cwd: '/srv/fleet',
        readFile: (p) => {
          read.push(p);
          return TOKENS;
        },
      },
    );
    expect(c.store).toEqual({ kind: 'sqlite', path: resolve('/srv/fleet/db/f.db') });
    expect(read).toEqual([resolve('/srv/fleet/secrets/tokens.json')]);
    expect(c.tokens).toMatchObject({ source: 'file', grants: [{ productId: 'acme' }] });
  });

  it('reports every bad variable at once, saying what it got', () => {
    expect(
      problems({
        PORT: '70000',
        FLEET_STORE: 'redis',
        FLEET_REAPER_INTERVAL_MS: '-5',
        FLEET_LOG_LEVEL: 'loud',
      }),
    ).toEqual([
      'PORT: must be a whole number from 0 to 65535 (got "70000")',
      'FLEET_STORE: must be one of sqlite, memory, cosmos (got "redis")',
      'FLEET_REAPER_INTERVAL_MS: must be a whole number from 10 to 3600000 (ms) (got "-5")',
      'FLEET_LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
    ]);
  });

  it('checks tokens: JSON, shape, roles, duplicates, not both sources', () => {
    expect(problems({ FLEET_TOKENS: 'nope' })[0]).toMatch(/^FLEET_TOKENS: is not valid JSON/);
    expect(problems({ FLEET_TOKENS: '{}' })).toEqual([
      'FLEET_TOKENS: must be a JSON array of { "token", "productId", "roles" }',
    ]);
    expect(
      problems({
        FLEET_TOKENS: JSON.stringify([
          { token: 'a', productId: 'p', roles: [] },
          { token: 'a', productId: 'p', roles: ['admin'], extra: 1 },
        ]),
      }),
    ).toEqual(
      expect.arrayContaining([
        'FLEET_TOKENS[0].roles: must name at least one role',
        // Unknown members are not named: a member name may be a token pasted there.
        'FLEET_TOKENS[1]: has a member other than token, productId, roles, subject, factoryIds, operator (not named here: it may be a secret)',
      ]),
    );
    expect(
      problems({
        FLEET_TOKENS: JSON.stringify([
          { token: 'a', productId: 'p', roles: ['admin'] },
          { token: 'a', productId: 'q', roles: ['admin'] },
        ]),
      }),
    ).toEqual(['FLEET_TOKENS[1].token: is listed twice']);
    expect(problems({ FLEET_TOKENS: '[]' })).toEqual([
      'FLEET_TOKENS: lists no token; every request would be refused',
    ]);
    expect(problems({ FLEET_TOKENS: TOKENS, FLEET_TOKENS_FILE: 'x' })).toEqual([
      'FLEET_TOKENS, FLEET_TOKENS_FILE: set one of them, not both',
    ]);
    const missing = problems({ FLEET_TOKENS_FILE: '/nope/tokens.json' }, () => {
      throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
    });
    expect(missing).toEqual(['FLEET_TOKENS_FILE: cannot read /nope/tokens.json (ENOENT)']);
  });

  it('FLEET_STORE=cosmos requires COSMOS_ENDPOINT (a URL) and COSMOS_KEY', () => {
    expect(problems({ FLEET_STORE: 'cosmos', COSMOS_ENDPOINT: 'not a url' })).toEqual([
      'COSMOS_ENDPOINT: must be an http(s) URL, e.g. https://myaccount.documents.azure.com:443/ (the value is not shown: it is not a URL, and may be a secret)',
      'COSMOS_KEY: is required with FLEET_STORE=cosmos (the account key)',
    ]);
    expect(
      loadConfig({
        FLEET_STORE: 'cosmos',
        COSMOS_ENDPOINT: 'https://acct.documents.azure.com:443/',
        COSMOS_KEY: 'k',
      }).store,
    ).toEqual({
      kind: 'cosmos',
      endpoint: 'https://acct.documents.azure.com:443/',
      key: 'k',
      database: 'fleet',
      allowSelfSignedCertificate: false,
    });
  });

  it('spreads claims by default with Cosmos DB (many processes), never with one process', () => {
    const cosmos = {
      FLEET_STORE: 'cosmos',
      COSMOS_ENDPOINT: 'https://a.example/',
      COSMOS_KEY: 'k',
    };
    expect(loadConfig(cosmos).claimSpread).toBe(4);
    expect(loadConfig({ ...cosmos, FLEET_CLAIM_SPREAD: '1' }).claimSpread).toBe(1);
    expect(loadConfig({ FLEET_STORE: 'sqlite' }).claimSpread).toBe(1);
    expect(problems({ FLEET_CLAIM_SPREAD: '0' })).toEqual([
      'FLEET_CLAIM_SPREAD: must be a whole number from 1 to 256 (got "0")',
    ]);
  });

  it('accepts a self-signed Cosmos DB certificate only from a loopback endpoint', () => {
    const local = {
      FLEET_STORE: 'cosmos',
      COSMOS_ENDPOINT: 'https://127.0.0.1:8081/',
      COSMOS_KEY: 'k',
      COSMOS_ALLOW_SELF_SIGNED_CERT: 'true',
    };
    expect(loadConfig(local).store).toMatchObject({ allowSelfSignedCertificate: true });
    expect(problems({ ...local, COSMOS_ENDPOINT: 'https://acct.documents.azure.com/' })).toEqual([
      'COSMOS_ALLOW_SELF_SIGNED_CERT: is for a local emulator; the endpoint must be on the loopback interface (got "acct.documents.azure.com")',
    ]);
    expect(problems({ ...local, COSMOS_ALLOW_SELF_SIGNED_CERT: 'yes' })).toEqual([
      'COSMOS_ALLOW_SELF_SIGNED_CERT: must be one of true, false, 1, 0 (got "yes")',
    ]);
  });

  it('warns about unknown FLEET_* variables (typos) without failing', () => {
    const c = loadConfig({ FLEET_LEASEMS: '5000', OTHER: 'x' });
    expect(c.warnings).toEqual([expect.stringMatching(/^FLEET_LEASEMS: unknown variable/)]);
  });
});
