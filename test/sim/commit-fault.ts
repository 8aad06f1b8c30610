/**
 * A failing group commit on the SQLite store (issue 10, item 4: events of a batch whose
 * COMMIT failed were reported anyway, and live projections differed from the rebuild
 * for the rest of the process's life).
 *
 * The store is the real SQLite adapter; the fault is SQLite's own: armed, the next
 * `sync()` that finds a batch open adds a row violating a deferred foreign key to it,
 * so that batch's `COMMIT` fails and the engine rolls every write of it back, whoever
 * made them (as test/coordinator/commit-failure.test.ts does). The failure reaches the
 * coordinators as the engine's `STORE_UNAVAILABLE` ("group commit failed"); this
 * wrapper tags it as an injected fault (`extra.injected`, `extra.faultId`), so the
 * simulator treats it like its other faults: a known failure, not a bug.
 */
import { sqliteConnection } from '../../adapters/store/sqlite/index.js';
import type { DocumentStore } from '../../runtime/document-store.port.js';
import { FleetError, isFleetError } from '../../runtime/errors.js';

export interface CommitFaults {
  /** The store to hand the coordinators (its `sync` may fail as armed). */
  store: DocumentStore;
  /** Arms a failure of the next batch that is open when someone syncs. */
  arm(): void;
  disarm(): void;
  readonly armed: boolean;
}

/**
 * Wraps `over` (`sqlite`, an `openSqliteStore` store, or a wrapper of it). `onFire` is
 * told each time an armed failure is planted in a batch and returns the fault id its
 * errors carry.
 */
export function commitFaults(
  sqlite: DocumentStore,
  onFire: () => number,
  over: DocumentStore = sqlite,
): CommitFaults {
  const db = sqliteConnection(sqlite);
  const inner = over;
  db.pragma('foreign_keys = ON');
  db.exec(`CREATE TABLE IF NOT EXISTS sim_commit_parent (id TEXT PRIMARY KEY);
    CREATE TABLE IF NOT EXISTS sim_commit_child (
      p TEXT REFERENCES sim_commit_parent (id) DEFERRABLE INITIALLY DEFERRED)`);
  const violate = db.prepare("INSERT INTO sim_commit_child VALUES ('missing')");
  let armed = false;
  let faultId = 0;
  const tag = (e: unknown): never => {
    if (isFleetError(e, 'STORE_UNAVAILABLE') && /group commit failed/.test(e.detail)) {
      throw new FleetError('STORE_UNAVAILABLE', e.detail, {
        cause: e,
        extra: { injected: true, faultId },
      });
    }
    throw e;
  };
  const sync = (from?: number): Promise<void> => {
    if (armed && db.inTransaction) {
      armed = false;
      faultId = onFire();
      violate.run();
    }
    return inner.sync(from).catch(tag);
  };
  const store = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'sync') return sync;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return {
    store,
    arm() {
      armed = true;
    },
    disarm() {
      armed = false;
    },
    get armed() {
      return armed;
    },
  };
}
