/**
 * The SQLite store adapter (better-sqlite3, WAL, group commit): `openSqliteStore()`
 * implements the `DocumentStore` port on one database file.
 */

export {
  type BackupProgress,
  fsyncPath,
  type OnlineBackupOptions,
  PAGES_PER_STEP,
  placeNew,
} from './online-backup.js';
export { MIGRATIONS, type Migration, SCHEMA_VERSION } from './schema.js';
export {
  DEFAULT_PATH,
  FACTORY_QUERIES,
  IN_USE_DETAIL,
  JOB_QUERIES,
  MAX_BATCH_WRITES,
  openSqliteStore,
  type SqliteStore,
  type SqliteStoreOptions,
  sqliteConnection,
} from './sqlite-store.js';
