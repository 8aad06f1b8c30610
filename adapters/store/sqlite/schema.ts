/**
 * The SQLite store's schema: one table per container, plus `meta` (the schema version)
 * and `job_deps` (who depends on whom). Created and migrated on open, in one
 * transaction, by {@link migrate}.
 *
 * Every container table has the same core: `pk` (the partition key), `id`, `etag` and
 * `json` (the document text, `_etag` included, so a read is one `JSON.parse`), keyed by
 * `(pk, id)`. Beside them sit the fields the named queries filter or order on,
 * extracted at write time and indexed. The small fact columns come before `json` on
 * purpose: SQLite stores a row's values in column order, and a column placed after a
 * large document can only be reached through the document's overflow pages.
 *
 * Jobs carry the most indexes, each shaped so its query is one index seek or range
 * with no sort step (verified with EXPLAIN QUERY PLAN in test/unit/sqlite-store.test.ts):
 * - `jobs_claim`  (pk, caps_key, rank, seq, id, not_before) of queued jobs only: claim
 *   selection seeks (product, capability set) and reads in claim order; `not_before`
 *   rides along so future jobs are skipped without touching the table;
 * - `jobs_due`    (due_at, id, pk) of jobs with a due time: the supervisor's range;
 * - `jobs_list`, `jobs_list_stage`: a product's jobs, newest first (of one stage);
 * - `jobs_blocked` (seq, id, pk) of blocked jobs only: the sweep's repair pass;
 * - `jobs_held`   (pk, holder): `holder` is only set while the job is in an active
 *   stage, so the partial index holds exactly the leases being counted;
 * - `jobs_outbox` of jobs whose outbox is not empty;
 * - `jobs_finished` (updatedAt, id, pk, stage) of terminal jobs only: retention.
 * Factories carry `factories_heartbeat` (heartbeat_at, pk, id): the stale check's walk
 * across products, oldest beat first.
 * Partial indexes keep the claim queue, due set, held set and outbox set as small as
 * what they index, whatever the number of finished jobs.
 *
 * Migrations are an ordered list; the version reached is recorded in `meta`. A database
 * recorded at a newer version than this build knows is refused, never "migrated down".
 */
import type Database from 'better-sqlite3';
import { FleetError } from '../../../runtime/index.js';

/** One step of the schema's history. */
export interface Migration {
  /** The version the database is at after this step (1, 2, 3...). */
  readonly version: number;
  readonly description: string;
  /** SQL run in the migration's transaction. */
  readonly sql: string;
}

/** The schema's history, oldest first. Append; never edit a released step. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'containers, job indexes, job dependencies',
    sql: `
      CREATE TABLE jobs (
        pk          TEXT NOT NULL,
        id          TEXT NOT NULL,
        etag        TEXT NOT NULL,
        stage       TEXT NOT NULL,
        rank        INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        caps_key    TEXT NOT NULL,
        not_before  TEXT,
        due_at      TEXT,
        holder      TEXT,
        has_outbox  INTEGER NOT NULL,
        deps_key    TEXT NOT NULL,
        json        TEXT NOT NULL,
        PRIMARY KEY (pk, id)
      );
      CREATE INDEX jobs_claim ON jobs (pk, caps_key, rank, seq, id, not_before)
        WHERE stage = 'queued';
      CREATE INDEX jobs_due ON jobs (due_at, id, pk) WHERE due_at IS NOT NULL;
      CREATE INDEX jobs_list ON jobs (pk, seq DESC, id);
      CREATE INDEX jobs_list_stage ON jobs (pk, stage, seq DESC, id);
      CREATE INDEX jobs_stage ON jobs (stage, seq, id, pk);
      CREATE INDEX jobs_held ON jobs (pk, holder) WHERE holder IS NOT NULL;
      CREATE INDEX jobs_outbox ON jobs (pk, id) WHERE has_outbox = 1;

      CREATE TABLE job_deps (
        pk      TEXT NOT NULL,
        dep_id  TEXT NOT NULL,
        job_id  TEXT NOT NULL,
        PRIMARY KEY (pk, dep_id, job_id)
      ) WITHOUT ROWID;

      CREATE TABLE runs (
        pk       TEXT NOT NULL,
        id       TEXT NOT NULL,
        etag     TEXT NOT NULL,
        attempt  INTEGER NOT NULL,
        json     TEXT NOT NULL,
        PRIMARY KEY (pk, id)
      );
      CREATE INDEX runs_list ON runs (pk, attempt, id);

      CREATE TABLE leases (
        pk    TEXT NOT NULL,
        id    TEXT NOT NULL,
        etag  TEXT NOT NULL,
        json  TEXT NOT NULL,
        PRIMARY KEY (pk, id)
      );

      CREATE TABLE factories (
        pk    TEXT NOT NULL,
        id    TEXT NOT NULL,
        etag  TEXT NOT NULL,
        json  TEXT NOT NULL,
        PRIMARY KEY (pk, id)
      );

      CREATE TABLE profiles (
        pk    TEXT NOT NULL,
        id    TEXT NOT NULL,
        etag  TEXT NOT NULL,
        json  TEXT NOT NULL,
        PRIMARY KEY (pk, id)
      );

      CREATE TABLE events (
        pk    TEXT NOT NULL,
        id    TEXT NOT NULL,
        etag  TEXT NOT NULL,
        seq   INTEGER NOT NULL,
        json  TEXT NOT NULL,
        PRIMARY KEY (pk, id)
      );
      CREATE INDEX events_list ON events (pk, seq, id);

      CREATE TABLE artifacts (
        pk          TEXT NOT NULL,
        id          TEXT NOT NULL,
        etag        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        json        TEXT NOT NULL,
        PRIMARY KEY (pk, id)
      );
      CREATE INDEX artifacts_list ON artifacts (pk, created_at, id);
    `,
  },

  {
    version: 2,
    description: 'jobs.deps_mode: dependency status from index columns, never the document',
    // SQLite appends an added column after `json`, where reading it would walk the
    // document's overflow pages; the table is rebuilt so `deps_mode` sits with the
    // other small columns. Every index is recreated (dropped with the old table).
    sql: `
      CREATE TABLE jobs_v2 (
        pk          TEXT NOT NULL,
        id          TEXT NOT NULL,
        etag        TEXT NOT NULL,
        stage       TEXT NOT NULL,
        rank        INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        caps_key    TEXT NOT NULL,
        not_before  TEXT,
        due_at      TEXT,
        holder      TEXT,
        has_outbox  INTEGER NOT NULL,
        deps_key    TEXT NOT NULL,
        deps_mode   TEXT NOT NULL,
        json        TEXT NOT NULL,
        PRIMARY KEY (pk, id)
      );
      INSERT INTO jobs_v2 (pk, id, etag, stage, rank, seq, caps_key, not_before, due_at, holder,
                           has_outbox, deps_key, deps_mode, json)
        SELECT pk, id, etag, stage, rank, seq, caps_key, not_before, due_at, holder, has_outbox,
               deps_key, CASE json_extract(json, '$.depsMode') WHEN 'soft' THEN 'soft' ELSE 'hard' END,
               json
        FROM jobs;
      DROP TABLE jobs;
      ALTER TABLE jobs_v2 RENAME TO jobs;
      CREATE INDEX jobs_claim ON jobs (pk, caps_key, rank, seq, id, not_before)
        WHERE stage = 'queued';
      CREATE INDEX jobs_due ON jobs (due_at, id, pk) WHERE due_at IS NOT NULL;
      CREATE INDEX jobs_list ON jobs (pk, seq DESC, id);
      CREATE INDEX jobs_list_stage ON jobs (pk, stage, seq DESC, id);
      CREATE INDEX jobs_stage ON jobs (stage, seq, id, pk);
      CREATE INDEX jobs_held ON jobs (pk, holder) WHERE holder IS NOT NULL;
      CREATE INDEX jobs_outbox ON jobs (pk, id) WHERE has_outbox = 1;
    `,
  },
  {
    version: 3,
    description:
      'events clustered by (job, seq); a partial index of blocked jobs instead of every stage',
    // Measured on the lifecycle bench: every transition appended an event into three
    // B-trees (the rowid table, its (pk, id) key, the (pk, seq) list index), each at a
    // random page, and moved the job in two stage indexes. Events now live in one
    // B-tree in stream order (a job's events share pages), and the cross-product stage
    // index, which only the sweep's blocked-jobs pass reads, holds blocked jobs only.
    sql: `
      CREATE TABLE events_v3 (
        pk    TEXT NOT NULL,
        seq   INTEGER NOT NULL,
        id    TEXT NOT NULL,
        etag  TEXT NOT NULL,
        json  TEXT NOT NULL,
        PRIMARY KEY (pk, seq)
      ) WITHOUT ROWID;
      INSERT INTO events_v3 (pk, seq, id, etag, json) SELECT pk, seq, id, etag, json FROM events;
      DROP TABLE events;
      ALTER TABLE events_v3 RENAME TO events;
      DROP INDEX jobs_stage;
      CREATE INDEX jobs_blocked ON jobs (seq, id, pk) WHERE stage = 'blocked';
    `,
  },
  {
    version: 4,
    description: 'factories.heartbeat_at: stale factories of every product from an index',
    // The supervisor's stale check walks factories by last heartbeat across products
    // (`factories.heartbeatBefore`). The table is rebuilt so the new column sits before
    // `json`, like every fact column; factory documents are small, so this is quick.
    sql: `
      CREATE TABLE factories_v4 (
        pk            TEXT NOT NULL,
        id            TEXT NOT NULL,
        etag          TEXT NOT NULL,
        heartbeat_at  TEXT,
        json          TEXT NOT NULL,
        PRIMARY KEY (pk, id)
      );
      INSERT INTO factories_v4 (pk, id, etag, heartbeat_at, json)
        SELECT pk, id, etag, json_extract(json, '$.lastHeartbeatAt'), json FROM factories;
      DROP TABLE factories;
      ALTER TABLE factories_v4 RENAME TO factories;
      CREATE INDEX factories_heartbeat ON factories (heartbeat_at, pk, id)
        WHERE heartbeat_at IS NOT NULL;
    `,
  },
  // --- Retention (issue 14) ---------------------------------------------------------
  {
    version: 5,
    description: 'a partial index of terminal jobs by the time they finished (retention)',
    // The retention pass lists terminal jobs finished before a cutoff, oldest first,
    // across products. The time is the document's `updatedAt` (a terminal job's last
    // change is the one that ended it), indexed as an expression so that no column (and
    // no table rebuild) is needed; only terminal rows are in the index, and the query
    // reads nothing else (`stage` rides along, so the table is never touched).
    sql: `
      CREATE INDEX jobs_finished ON jobs (json_extract(json, '$.updatedAt'), id, pk, stage)
        WHERE stage IN ('shipped', 'dead_letter');
    `,
  },
];

/** The schema version this build creates and understands. */
export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** The version recorded in `meta`, or 0 for a database Fleet never touched. */
export function storedSchemaVersion(db: Database.Database): number {
  const table = db
    .prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'")
    .pluck()
    .get();
  if (table === undefined) return 0;
  const value = db
    .prepare("SELECT value FROM meta WHERE key = 'schema_version'")
    .pluck()
    .get() as unknown;
  const version = Number(value ?? 0);
  if (!Number.isInteger(version) || version < 0) {
    throw new FleetError(
      'STORE_UNAVAILABLE',
      `database schema version ${String(value)} is not a version number; is this a Fleet database?`,
    );
  }
  return version;
}

/**
 * Brings the database to {@link SCHEMA_VERSION} in one immediate transaction: creates
 * the schema on an empty database, applies the missing steps on an older one, and does
 * nothing on a current one. A database recorded at a newer version is refused with
 * `STORE_UNAVAILABLE` (this build would misread it); so is a database that holds tables
 * but no Fleet version (someone else's file). Returns the version found before.
 */
export function migrate(db: Database.Database): number {
  return db
    .transaction((): number => {
      const found = storedSchemaVersion(db);
      if (found > SCHEMA_VERSION) {
        throw new FleetError(
          'STORE_UNAVAILABLE',
          `database schema version ${found} is newer than this Fleet build supports (${SCHEMA_VERSION}); upgrade Fleet`,
        );
      }
      if (found === 0) {
        const tables = db
          .prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table'")
          .pluck()
          .get() as number;
        if (tables > 0) {
          throw new FleetError(
            'STORE_UNAVAILABLE',
            'the database file holds tables but no Fleet schema version; it is not a Fleet database',
          );
        }
        db.exec('CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
      }
      for (const step of MIGRATIONS) {
        if (step.version <= found) continue;
        db.exec(step.sql);
        db.prepare(
          "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        ).run(String(step.version));
      }
      return found;
    })
    .immediate();
}
