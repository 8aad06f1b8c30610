/**
 * Issue 10, item 17: the SQLite store's files are private to the user running Fleet —
 * every folder it creates 0700, the database, its WAL and anything else it writes
 * beside them 0600 — whatever the process's umask.
 */
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../../adapters/store/sqlite/index.js';
import { makeJob, uid } from '../support/docs.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'fleet-modes-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8).padStart(3, '0');

/** Runs `fn` with the process umask set to `mask`, then puts the old one back. */
async function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const before = process.umask(mask);
  try {
    return await fn();
  } finally {
    process.umask(before);
  }
}

describe('17: SQLite files are private', () => {
  for (const umask of [0o000, 0o022, 0o077]) {
    it(`17: folders Fleet creates are 0700; the database, WAL and every other file 0600 (umask ${umask.toString(8).padStart(3, '0')})`, async () => {
      const base = mkdtempSync(join(root, 'case-'));
      const folder = join(base, 'a', 'b');
      const path = join(folder, 'fleet.db');
      await withUmask(umask, async () => {
        const store = openSqliteStore({ path });
        try {
          const productId = uid('product');
          await store.jobs.create(makeJob({ productId, bodyMd: 'private' }));
          await store.sync();
          const files = readdirSync(folder).sort();
          // The WAL is there while the store is open (exclusive locking: no -shm file).
          expect(files).toContain('fleet.db');
          expect(files).toContain('fleet.db-wal');
          for (const f of files) expect([f, mode(join(folder, f))]).toEqual([f, '600']);
        } finally {
          await store.close();
        }
      });
      expect(mode(join(base, 'a'))).toBe('700');
      expect(mode(folder)).toBe('700');
      expect(mode(path)).toBe('600');
    });
  }

  it('17: an existing folder keeps its mode, a new database in it is 0600; an existing database keeps its mode', async () => {
    const base = mkdtempSync(join(root, 'existing-'));
    const before = mode(base);
    const path = join(base, 'fleet.db');
    await withUmask(0o022, async () => {
      const store = openSqliteStore({ path });
      await store.close();
    });
    expect(mode(base)).toBe(before);
    expect(mode(path)).toBe('600');
    // The operator's choice for a database that exists (e.g. readable by a backup group).
    chmodSync(path, 0o640);
    const again = openSqliteStore({ path });
    await again.close();
    expect(mode(path)).toBe('640');
  });
});
