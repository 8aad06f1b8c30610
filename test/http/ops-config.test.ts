/**
 * The operations variables of the standalone server's configuration (issue 14):
 * `FLEET_BACKUP_DIR` and operator grants.
 */
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../adapters/http/config.js';

const problemsOf = (env: Record<string, string>): readonly string[] => {
  try {
    loadConfig(env, { cwd: '/srv/fleet' });
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
};

describe('FLEET_BACKUP_DIR', () => {
  it('defaults to the database’s folder (SQLite), else the temporary folder; a relative one resolves against the working folder', () => {
    expect(loadConfig({ FLEET_DB: 'db/x.db' }, { cwd: '/srv/fleet' }).backupDir).toBe(
      resolve('/srv/fleet', 'db'),
    );
    expect(loadConfig({ FLEET_STORE: 'memory' }, { cwd: '/srv/fleet' }).backupDir).toBe(tmpdir());
    expect(loadConfig({ FLEET_BACKUP_DIR: 'backups' }, { cwd: '/srv/fleet' }).backupDir).toBe(
      resolve('/srv/fleet', 'backups'),
    );
  });
});

describe('operator grants', () => {
  it('"operator": true needs the admin role in the same grant, and must be a boolean', () => {
    const grant = (extra: object) =>
      JSON.stringify([{ token: 't1', productId: 'acme', roles: ['submitter'], ...extra }]);
    expect(problemsOf({ FLEET_TOKENS: grant({ operator: true }) })).toEqual([
      'FLEET_TOKENS[0].operator: needs the role admin in the same grant',
    ]);
    expect(problemsOf({ FLEET_TOKENS: grant({ operator: 'yes' }) })).toEqual([
      'FLEET_TOKENS[0].operator: must be true or false',
    ]);
    const ok = loadConfig({
      FLEET_TOKENS: grant({ roles: ['admin'], operator: true }),
    });
    expect(ok.tokens.source === 'env' && ok.tokens.grants[0]?.operator).toBe(true);
  });
});
