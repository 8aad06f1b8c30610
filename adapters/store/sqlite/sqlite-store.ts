/**
 * The SQLite document store: the `DocumentStore` port on one better-sqlite3 connection
 * to one database file, in WAL mode. The embedded, durable default.
 *
 * Group commit: see `engine.ts` (every write runs at once inside the open batch; the batch
 * commits at the end of the event-loop turn; `sync()` resolves when it is durable).
 *
 * One process. The connection runs with `locking_mode=EXCLUSIVE` and takes its lock at
 * open; a second opener (another process, or a second `openSqliteStore` on the same
 * file in this process) is refused at once with `STORE_UNAVAILABLE` ("in use by another
 * Fleet process"). Exclusive mode also keeps the WAL index in process memory (no -shm
 * file). Several coordinator processes on one database would need every claim to
 * re-read under a shared lock, and the in-memory claim-queue map below would go stale;
 * refusing is simpler and is what the embedded store is for (DESIGN.md: Cosmos is the
 * store for many processes).
 *
 * Claim queues. Claim selection needs the product's distinct capability sets of queued
 * jobs (a job qualifies when its set is a subset of the factory's). They are kept in a
 * small in-memory map (product → capability set → queued count), built from the
 * `jobs_claim` index at open, maintained on every job write and rebuilt after a
 * rollback. Selection is then one index seek per qualifying set, in claim order, merged.
 *
 * Strings compare as SQLite's BINARY collation (UTF-8 bytes, i.e. code points), which
 * equals JavaScript's `<` for every string without characters above U+FFFF.
 */
import { chmodSync, closeSync, fchmodSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type {
  ArtifactDoc,
  ArtifactsContainer,
  ClaimQuery,
  Container,
  DepsMode,
  DocumentStore,
  EventDoc,
  EventsContainer,
  FactoriesContainer,
  FactoryDoc,
  FinishedJob,
  FinishedJobKey,
  JobCommit,
  JobDoc,
  JobLink,
  JobListQuery,
  JobListView,
  JobOfView,
  JobsContainer,
  LeaseDoc,
  LeasesContainer,
  Page,
  PageRequest,
  Priority,
  ProfileDoc,
  ProfilesContainer,
  PurgedDocuments,
  RunDoc,
  RunsContainer,
  Stage,
  Stored,
} from '../../../runtime/index.js';
import {
  ACTIVE_STAGES,
  CONTAINERS,
  FleetError,
  JOB_SUMMARY_OMITS,
  PRIORITY_RANK,
} from '../../../runtime/index.js';
import { RandomEtags } from '../shared/etag.js';
import { jobListOptions, jsonBytes, PageBudget } from '../shared/job-list.js';
import { type DB, Engine, mapError, type Statement } from './engine.js';
import { type OnlineBackupOptions, onlineBackup } from './online-backup.js';

export { IN_USE_DETAIL, MAX_BATCH_WRITES } from './engine.js';

import {
  type CursorCodec,
  type CursorKey,
  type CursorPart,
  cursorCodec,
} from '../shared/cursor.js';
import {
  nullableString,
  requireLimit,
  requireNumber,
  requireString,
  StoreFault,
  stringArray,
} from '../shared/store-fault.js';
import { migrate } from './schema.js';

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/** How to open the SQLite store. */
export interface SqliteStoreOptions {
  /** Database file. @defaultValue './data/fleet.db' (folder created). ':memory:' allowed for tests. */
  path?: string;
  /** 'FULL' (default): a committed write survives power loss. 'NORMAL': survives a process crash, may lose the last commits on power loss. */
  synchronous?: 'FULL' | 'NORMAL';
}

/** The SQLite store: the port, plus where it lives and how many commits it made. */
export type SqliteStore = DocumentStore & {
  /** The database file, resolved to an absolute path (or ':memory:'). */
  readonly path: string;
  /** commits so far (for tests/bench) */
  readonly commits: number;
  /** Always present on SQLite (see `online-backup.ts`). */
  backup: NonNullable<DocumentStore['backup']>;
  /** Retention (issue 14): always present on SQLite. */
  purgeJob: NonNullable<DocumentStore['purgeJob']>;
  /** A job and its derived documents in one transaction: always present on SQLite. */
  commit: NonNullable<DocumentStore['commit']>;
  /** Several such commits in one atomic step: always present on SQLite. */
  commitMany: NonNullable<DocumentStore['commitMany']>;
};

export const DEFAULT_PATH = './data/fleet.db';

/**
 * How long the open waits for another connection's lock before refusing, in ms. The
 * holder keeps its lock for as long as it runs, so waiting longer only delays the error.
 */
const BUSY_TIMEOUT_MS = 50;

/** Page cache of the connection: 128 MiB (SQLite's default is 2 MiB). */
const CACHE_KIB = 131_072;

/**
 * WAL pages between two automatic checkpoints: 10,000 (about 40 MB) instead of SQLite's
 * 1,000. A claim dirties about 7 pages, many of them rewritten by the next claims, so
 * a longer interval copies each hot page into the database file fewer times: measured
 * about 15% less CPU per claim (64 claimers, 20k queued).
 */
const CHECKPOINT_PAGES = 10_000;

/** The WAL file is truncated back to this size after a checkpoint. */
const WAL_LIMIT_BYTES = 64 * 1024 * 1024;

/**
 * The LIMIT clause of every query. A bare `LIMIT ?` makes SQLite (as better-sqlite3
 * builds it, with STAT4) recompile the statement whenever a new value is bound, as the
 * limit may change the plan: measured 13.8 µs for a one-row claim seek against 5.2 µs
 * with the cast, which the planner does not look into.
 */
const LIMIT = 'LIMIT CAST(? AS INTEGER)';

// ---------------------------------------------------------------------------
// Small shared helpers
// ---------------------------------------------------------------------------

const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** A query key as bound to SQL: anything but a string matches nothing (NULL equals nothing). */
const key = (value: unknown): string | null => (typeof value === 'string' ? value : null);

// ---------------------------------------------------------------------------
// Paging (cursors: ../shared/cursor.ts)
// ---------------------------------------------------------------------------

/**
 * One page from rows of `[...key parts, json]`, fetched with `limit + 1` so the extra
 * row tells whether another page follows; the cursor is the last item's key.
 */
function pageOf<T>(
  rows: unknown[][],
  limit: number,
  codec: CursorCodec,
  more = rows.length > limit,
): Page<T> {
  if (rows.length > limit) rows.length = limit;
  const items = rows.map((r) => JSON.parse(r[r.length - 1] as string) as T);
  const last = rows[rows.length - 1];
  return {
    items,
    nextCursor: more && last !== undefined ? codec.encode(last.slice(0, -1) as CursorKey) : null,
  };
}

/**
 * Rows of `stmt` (JSON text last) for one page of `limit`: `limit + 1` rows without a
 * budget (the extra one says another page follows); with one, row by row until a row
 * does not fit `maxBytes` (read, not parsed, and left for the next page).
 */
function budgetedRows(
  stmt: Statement,
  params: unknown[],
  limit: number,
  maxBytes: number | undefined,
): { rows: unknown[][]; more: boolean } {
  if (maxBytes === undefined) {
    const rows = stmt.all(...params, limit + 1) as unknown[][];
    return { rows, more: rows.length > limit };
  }
  const budget = new PageBudget(maxBytes);
  const rows: unknown[][] = [];
  for (const row of stmt.iterate(...params, limit + 1) as IterableIterator<unknown[]>) {
    if (rows.length === limit || !budget.admits(jsonBytes(row[row.length - 1] as string))) {
      return { rows, more: true };
    }
    rows.push(row);
  }
  return { rows, more: false };
}

// ---------------------------------------------------------------------------
// The generic table behind every container
// ---------------------------------------------------------------------------

/** A document ready to be written: its keys, fresh etag and JSON text (`_etag` included). */
interface Serialized {
  readonly pk: string;
  readonly id: string;
  readonly etag: string;
  readonly json: string;
  /** The caller's document (read-only here: facts are taken from it before writing). */
  readonly doc: Record<string, unknown>;
}

/** What one container adds to the generic table. */
interface TableSpec {
  /** Container name, for messages. */
  readonly name: string;
  /** SQL table name. */
  readonly table: string;
  /** Field holding the partition key. */
  readonly partitionKey: string;
  /** Extracted columns (between `etag` and `json`), in table order. */
  readonly columns: readonly string[];
  /** Their values for a document (checked). */
  values(doc: Record<string, unknown>): unknown[];
  /** The table's primary key, the conflict target of an upsert. @defaultValue 'pk, id' */
  readonly key?: string;
}

/**
 * The four basic operations over one table. Each call does its SQLite work at once,
 * synchronously; the promise only carries the result.
 */
class SqliteContainer<T extends { id: string }> implements Container<T> {
  protected readonly engine: Engine;
  protected readonly etags: RandomEtags;
  protected readonly spec: TableSpec;
  protected readonly readStmt: Statement;
  readonly #insert: Statement;
  readonly #update: Statement;
  readonly #delete: Statement;
  readonly #deleteIf: Statement;
  readonly #upsert: Statement;
  protected readonly existsStmt: Statement;

  constructor(engine: Engine, etags: RandomEtags, spec: TableSpec) {
    this.engine = engine;
    this.etags = etags;
    this.spec = spec;
    const db = engine.db;
    const t = spec.table;
    const cols = ['pk', 'id', 'etag', ...spec.columns, 'json'];
    this.readStmt = db.prepare(`SELECT json FROM ${t} WHERE pk = ? AND id = ?`).pluck();
    this.existsStmt = db.prepare(`SELECT 1 FROM ${t} WHERE pk = ? AND id = ?`).pluck();
    this.#insert = db.prepare(
      `INSERT INTO ${t} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
    );
    const set = ['etag', ...spec.columns, 'json'].map((c) => `${c} = ?`).join(', ');
    this.#update = db.prepare(`UPDATE ${t} SET ${set} WHERE pk = ? AND id = ? AND etag = ?`);
    this.#delete = db.prepare(`DELETE FROM ${t} WHERE pk = ? AND id = ?`);
    this.#deleteIf = db.prepare(`DELETE FROM ${t} WHERE pk = ? AND id = ? AND etag = ?`);
    const excluded = ['etag', ...spec.columns, 'json']
      .map((c) => `${c} = excluded.${c}`)
      .join(', ');
    this.#upsert = db.prepare(
      `INSERT INTO ${t} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})
       ON CONFLICT (${spec.key ?? 'pk, id'}) DO UPDATE SET ${excluded}`,
    );
  }

  /**
   * A write of `doc` for a commit (`DocumentStore.commit`): checked and serialized now,
   * applied by the returned function inside the commit's transaction. `mode` `insert`
   * fails on a taken id (`ALREADY_EXISTS`); `upsert` replaces whatever is stored.
   */
  prepareWrite(doc: T, mode: 'insert' | 'upsert'): () => void {
    const w = this.serialize(doc);
    const values = this.spec.values(w.doc);
    const stmt = mode === 'insert' ? this.#insert : this.#upsert;
    return () => {
      stmt.run(w.pk, w.id, w.etag, ...values, w.json);
    };
  }

  /** Checks `doc` and turns it into JSON text with a fresh etag (a given `_etag` is replaced). */
  protected serialize(doc: T): Serialized {
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
      throw new StoreFault('invalid', 'a document must be an object');
    }
    const record = doc as unknown as Record<string, unknown>;
    const pk = requireString(
      record[this.spec.partitionKey],
      `${this.spec.name}.${this.spec.partitionKey}`,
    );
    const id = requireString(record.id, `${this.spec.name}.id`);
    const etag = this.etags.next();
    let json: string;
    try {
      json = JSON.stringify({ ...record, _etag: etag });
    } catch (e) {
      throw new StoreFault('invalid', `document is not JSON-serializable (${String(e)})`);
    }
    return { pk, id, etag, json, doc: record };
  }

  async create(doc: T): Promise<Stored<T>> {
    let where = '';
    try {
      const w = this.serialize(doc);
      where = ` ${w.pk}/${w.id}`;
      const values = this.spec.values(w.doc);
      this.engine.write(() => this.#insert.run(w.pk, w.id, w.etag, ...values, w.json));
      // The stored text is the store's copy; the caller gets its own document back
      // with the new etag (no second parse on the write path).
      return { ...w.doc, _etag: w.etag } as unknown as Stored<T>;
    } catch (e) {
      throw mapError(e, `${this.spec.name}.create${where}`);
    }
  }

  async read(partitionKey: string, id: string): Promise<Stored<T> | null> {
    try {
      this.engine.assertOpen();
      if (typeof partitionKey !== 'string' || typeof id !== 'string') return null;
      const json = this.readStmt.get(partitionKey, id) as string | undefined;
      return json === undefined ? null : (JSON.parse(json) as Stored<T>);
    } catch (e) {
      throw mapError(e, `${this.spec.name}.read`);
    }
  }

  async replace(doc: T, etag: string): Promise<Stored<T>> {
    let where = '';
    try {
      if (typeof etag !== 'string') throw new StoreFault('invalid', 'etag must be a string');
      const w = this.serialize(doc);
      where = ` ${w.pk}/${w.id}`;
      const values = this.spec.values(w.doc);
      this.engine.write(() => {
        const r = this.#update.run(w.etag, ...values, w.json, w.pk, w.id, etag);
        if (r.changes === 0) this.#whyUnchanged(w.pk, w.id);
      });
      // The stored text is the store's copy; the caller gets its own document back
      // with the new etag (no second parse on the write path).
      return { ...w.doc, _etag: w.etag } as unknown as Stored<T>;
    } catch (e) {
      throw mapError(e, `${this.spec.name}.replace${where}`);
    }
  }

  async delete(partitionKey: string, id: string, etag?: string): Promise<void> {
    const where = ` ${String(partitionKey)}/${String(id)}`;
    try {
      this.engine.assertOpen();
      if (typeof partitionKey !== 'string' || typeof id !== 'string') {
        throw new StoreFault('missing', 'not found');
      }
      if (etag !== undefined && typeof etag !== 'string') {
        throw new StoreFault('invalid', 'etag must be a string');
      }
      this.engine.write(() => {
        const r =
          etag === undefined
            ? this.#delete.run(partitionKey, id)
            : this.#deleteIf.run(partitionKey, id, etag);
        if (r.changes === 0) this.#whyUnchanged(partitionKey, id);
      });
    } catch (e) {
      throw mapError(e, `${this.spec.name}.delete${where}`);
    }
  }

  /** After a conditional statement changed nothing: the document is missing, or its etag moved. */
  #whyUnchanged(pk: string, id: string): never {
    if (this.existsStmt.get(pk, id) === undefined) throw new StoreFault('missing', 'not found');
    throw new StoreFault('stale', 'etag does not match');
  }

  /** Runs a query on an open store, with errors mapped. */
  protected query<R>(op: string, fn: () => R): Promise<R> {
    try {
      this.engine.assertOpen();
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(mapError(e, `${this.spec.name}.${op}`));
    }
  }

  // --- Retention (issue 14) -------------------------------------------------------
  #deletePartition: Statement | undefined;

  /**
   * Deletes every document of the partition `pk` (run inside the caller's transaction,
   * `DocumentStore.purgeJob`) and answers how many there were. A range of the primary
   * key, never a scan.
   */
  deletePartition(pk: string): number {
    this.#deletePartition ??= this.engine.db.prepare(`DELETE FROM ${this.spec.table} WHERE pk = ?`);
    return this.#deletePartition.run(pk).changes;
  }
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

const ACTIVE = new Set<string>(ACTIVE_STAGES);

/** What the job columns hold for one document. */
interface JobFacts {
  readonly stage: string;
  readonly rank: number;
  readonly seq: number;
  /** The capability set, sorted and deduplicated, as JSON text. */
  readonly capsKey: string;
  readonly notBefore: string | null;
  readonly dueAt: string | null;
  /** The holder while the job is in an active stage, else null. */
  readonly holder: string | null;
  readonly hasOutbox: 0 | 1;
  /** Distinct dependency ids, in document order, as JSON text. */
  readonly depsKey: string;
  readonly deps: readonly string[];
  readonly depsMode: DepsMode;
}

/** A stored `depsMode`: anything but `soft` counts as the default, `hard`. */
const depsModeOf = (value: unknown): DepsMode => (value === 'soft' ? 'soft' : 'hard');

function jobFacts(doc: Record<string, unknown>): JobFacts {
  const stage = requireString(doc.stage, 'job.stage');
  const priority = doc.priority;
  if (typeof priority !== 'string' || !Object.hasOwn(PRIORITY_RANK, priority)) {
    throw new StoreFault('invalid', `job.priority ${String(priority)} is unknown`);
  }
  const caps = stringArray(doc.capabilities, 'job.capabilities');
  const capsKey =
    caps.length === 0 ? '[]' : JSON.stringify([...new Set(caps)].sort(compareStrings));
  const rawDeps = stringArray(doc.deps, 'job.deps');
  const deps = rawDeps.length === 0 ? rawDeps : [...new Set(rawDeps)];
  const outbox = doc.outbox;
  if (outbox !== undefined && !Array.isArray(outbox))
    throw new StoreFault('invalid', 'job.outbox must be an array');
  const holder = nullableString(doc.holderFactoryId, 'job.holderFactoryId');
  return {
    stage,
    rank: PRIORITY_RANK[priority as Priority],
    seq: requireNumber(doc.seq, 'job.seq'),
    capsKey,
    notBefore: nullableString(doc.notBefore, 'job.notBefore'),
    dueAt: nullableString(doc.dueAt, 'job.dueAt'),
    holder: holder !== null && ACTIVE.has(stage) ? holder : null,
    hasOutbox: outbox !== undefined && outbox.length > 0 ? 1 : 0,
    depsKey: deps.length === 0 ? '[]' : JSON.stringify(deps),
    deps,
    depsMode: depsModeOf(doc.depsMode),
  };
}

/** A job's links from its columns: `[pk, id, stage, seq, deps_key, deps_mode]`. */
type LinkRow = [string, string, string, number, string, string];
const linkOf = (r: LinkRow): JobLink => ({
  productId: r[0],
  id: r[1],
  stage: r[2] as Stage,
  seq: r[3],
  deps: JSON.parse(r[4]) as string[],
  depsMode: depsModeOf(r[5]),
});

/**
 * The indexed job columns (the previous-version lookup returns them after `etag`). A
 * replace sets only the ones whose value changed: SQLite rewrites the entries of every
 * index over a column named in `SET`, even when the value is the same (measured with
 * these seven indexes and a 2 KB document: an update naming every column 10.6 µs, one
 * naming none of the indexed ones 4.4 µs). The coordinator's second write of a claim
 * (emptying the outbox) thus touches one small index instead of seven.
 */
const JOB_COLUMNS = [
  'stage',
  'rank',
  'seq',
  'caps_key',
  'not_before',
  'due_at',
  'holder',
  'has_outbox',
] as const;

const factValues = (f: JobFacts): unknown[] => [
  f.stage,
  f.rank,
  f.seq,
  f.capsKey,
  f.notBefore,
  f.dueAt,
  f.holder,
  f.hasOutbox,
];

/** `[etag, ...JOB_COLUMNS values, deps_key]` of a stored job. */
type PrevRow = [string, ...unknown[]];

/** Jobs whose row facts `SqliteJobs` keeps after writing them (about 150 bytes each). */
const RECENT_ROWS = 50_000;

/** A job write prepared for `apply` inside a transaction (see `SqliteJobs.prepareJob`). */
interface PreparedJob {
  readonly where: string;
  readonly result: Stored<JobDoc>;
  apply(): void;
  after(): void;
}

/** The SQL of the named job queries (exported for EXPLAIN QUERY PLAN tests). */
export const JOB_QUERIES = {
  /** Queued jobs of one (product, capability set), past notBefore, in claim order. */
  claim: `SELECT rank, seq, id, json FROM jobs INDEXED BY jobs_claim
    WHERE pk = ? AND caps_key = ? AND stage = 'queued' AND (not_before IS NULL OR not_before <= ?)
    ORDER BY rank, seq, id ${LIMIT}`,
  due: `SELECT json FROM jobs INDEXED BY jobs_due
    WHERE due_at <= ? ORDER BY due_at, id, pk ${LIMIT}`,
  dueAfter: `SELECT json FROM jobs INDEXED BY jobs_due
    WHERE due_at <= ? AND (due_at, id, pk) > (?, ?, ?) ORDER BY due_at, id, pk ${LIMIT}`,
  dueAfterId: `SELECT json FROM jobs INDEXED BY jobs_due
    WHERE due_at <= ? AND (due_at, id) > (?, ?) ORDER BY due_at, id, pk ${LIMIT}`,
  list: `SELECT seq, id, json FROM jobs WHERE pk = ? ORDER BY seq DESC, id ${LIMIT}`,
  listAfter: `SELECT seq, id, json FROM jobs WHERE pk = ? AND seq <= ? AND (seq < ? OR id > ?)
    ORDER BY seq DESC, id ${LIMIT}`,
  listStage: `SELECT seq, id, json FROM jobs WHERE pk = ? AND stage = ?
    ORDER BY seq DESC, id ${LIMIT}`,
  listStageAfter: `SELECT seq, id, json FROM jobs
    WHERE pk = ? AND stage = ? AND seq <= ? AND (seq < ? OR id > ?)
    ORDER BY seq DESC, id ${LIMIT}`,
  blocked: `SELECT seq, id, pk, stage, deps_key, deps_mode FROM jobs INDEXED BY jobs_blocked
    WHERE stage = 'blocked' ORDER BY seq, id, pk ${LIMIT}`,
  blockedAfter: `SELECT seq, id, pk, stage, deps_key, deps_mode FROM jobs INDEXED BY jobs_blocked
    WHERE stage = 'blocked' AND (seq, id, pk) > (?, ?, ?) ORDER BY seq, id, pk ${LIMIT}`,
  dependents: `SELECT j.pk, j.id, j.stage, j.seq, j.deps_key, j.deps_mode
    FROM job_deps AS d JOIN jobs AS j ON j.pk = d.pk AND j.id = d.job_id
    WHERE d.pk = ? AND d.dep_id = ? ORDER BY j.seq, j.id`,
  link: `SELECT pk, id, stage, seq, deps_key, deps_mode FROM jobs WHERE pk = ? AND id = ?`,
  heldBy: `SELECT id, seq FROM jobs INDEXED BY jobs_held WHERE pk = ? AND holder = ?`,
  withOutbox: `SELECT json FROM jobs WHERE has_outbox = 1 ${LIMIT}`,
  countHeld: `SELECT count(*) FROM jobs WHERE pk = ? AND holder = ?`,
  /** Jobs per (product, stage): one pass over the (pk, stage, ...) index, never the table. */
  countByStage: `SELECT pk, stage, count(*) FROM jobs INDEXED BY jobs_list_stage
    GROUP BY pk, stage ORDER BY pk, stage`,
  /** Every product's queued capability sets and their sizes (at open, and after a rollback). */
  queuedSets: `SELECT pk, caps_key, count(*) FROM jobs INDEXED BY jobs_claim
    WHERE stage = 'queued' GROUP BY pk, caps_key`,
  // --- Retention (issue 14): terminal jobs by finish time, from `jobs_finished` only.
  finished: `SELECT json_extract(json, '$.updatedAt'), id, pk, stage FROM jobs INDEXED BY jobs_finished
    WHERE stage IN ('shipped', 'dead_letter') AND json_extract(json, '$.updatedAt') < ?
    ORDER BY json_extract(json, '$.updatedAt'), id, pk ${LIMIT}`,
  finishedAfter: `SELECT json_extract(json, '$.updatedAt'), id, pk, stage FROM jobs INDEXED BY jobs_finished
    WHERE stage IN ('shipped', 'dead_letter') AND json_extract(json, '$.updatedAt') < ?
      AND (json_extract(json, '$.updatedAt'), id, pk) > (?, ?, ?)
    ORDER BY json_extract(json, '$.updatedAt'), id, pk ${LIMIT}`,
} as const;

/** The list queries that also come as summaries (`view: 'summary'`). */
const SUMMARY_QUERIES = ['list', 'listAfter', 'listStage', 'listStageAfter'] as const;
type SummaryQuery = (typeof SUMMARY_QUERIES)[number];

/**
 * A list query's summary twin: `json_remove` takes body and manifest out inside SQLite,
 * so they never reach JavaScript (neither copied nor parsed).
 */
const summarySql = (sql: string): string => {
  const paths = JOB_SUMMARY_OMITS.map((k) => `'$.${k}'`).join(', ');
  const out = sql.replace(
    'SELECT seq, id, json FROM',
    `SELECT seq, id, json_remove(json, ${paths}) FROM`,
  );
  if (out === sql) throw new Error(`no JSON column to summarize in: ${sql}`);
  return out;
};

/** Queued jobs of one capability set of a product. */
interface Bucket {
  readonly key: string;
  readonly caps: readonly string[];
  count: number;
}

/** product → capability set → number of queued jobs with exactly that set. */
class ClaimQueues {
  readonly #byProduct = new Map<string, Map<string, Bucket>>();

  buckets(pk: string): Map<string, Bucket> | undefined {
    return this.#byProduct.get(pk);
  }

  add(pk: string, key: string, n = 1): void {
    let buckets = this.#byProduct.get(pk);
    if (buckets === undefined) {
      buckets = new Map();
      this.#byProduct.set(pk, buckets);
    }
    const bucket = buckets.get(key);
    if (bucket !== undefined) bucket.count += n;
    else buckets.set(key, { key, caps: JSON.parse(key) as string[], count: n });
  }

  remove(pk: string, key: string): void {
    const buckets = this.#byProduct.get(pk);
    const bucket = buckets?.get(key);
    if (buckets === undefined || bucket === undefined) return;
    if (--bucket.count > 0) return;
    buckets.delete(key);
    if (buckets.size === 0) this.#byProduct.delete(pk);
  }

  /** Replaces everything with the database's view: rows of [pk, caps_key, count]. */
  load(rows: readonly (readonly unknown[])[]): void {
    this.#byProduct.clear();
    for (const [pk, key, n] of rows) this.add(pk as string, key as string, n as number);
  }
}

const listCursor = cursorCodec('jobs.list', ['number', 'string']);
const blockedCursor = cursorCodec('jobs.listBlocked', ['number', 'string', 'string']);

/** A claim candidate row: [rank, seq, id, json]. */
type ClaimRow = [number, number, string, string];
const compareClaimRows = (a: ClaimRow, b: ClaimRow): number =>
  a[0] - b[0] || a[1] - b[1] || compareStrings(a[2], b[2]);

class SqliteJobs extends SqliteContainer<JobDoc> implements JobsContainer {
  readonly #queues = new ClaimQueues();
  /** Set by a rollback: the queue map no longer matches the database; reloaded on next use. */
  #queuesStale = false;
  readonly #insertJob: Statement;
  readonly #prev: Statement;
  readonly #etagOf: Statement;
  /**
   * The row facts (`[etag, ...JOB_COLUMNS, deps_key]`) of the jobs written last, newest
   * last: a replace of one of them needs no read first, and `etag` answers from here.
   * Only rows this connection wrote and committed into the open batch are kept; a
   * rollback clears it.
   */
  readonly #rows = new Map<string, PrevRow>();
  /** UPDATE statements by the bit mask of the indexed columns they set (built on first use). */
  readonly #updates: (Statement | undefined)[] = [];
  readonly #deleteJob: Statement;
  readonly #addDep: Statement;
  readonly #dropDep: Statement;
  readonly #q: { readonly [K in keyof typeof JOB_QUERIES]: Statement };
  /** The list queries, answering summaries: SQLite drops body and manifest from the text. */
  readonly #summaries: { readonly [K in SummaryQuery]: Statement };

  constructor(engine: Engine, etags: RandomEtags) {
    super(engine, etags, {
      name: 'jobs',
      table: 'jobs',
      partitionKey: CONTAINERS.jobs.partitionKey,
      columns: [],
      values: () => [],
    });
    const db = engine.db;
    this.#insertJob = db.prepare(
      `INSERT INTO jobs (pk, id, etag, ${JOB_COLUMNS.join(', ')}, deps_key, deps_mode, json)
       VALUES (?, ?, ?, ${JOB_COLUMNS.map(() => '?').join(', ')}, ?, ?, ?)`,
    );
    this.#prev = db
      .prepare(`SELECT etag, ${JOB_COLUMNS.join(', ')}, deps_key FROM jobs WHERE pk = ? AND id = ?`)
      .raw();
    this.#etagOf = db.prepare('SELECT etag FROM jobs WHERE pk = ? AND id = ?').pluck();
    this.#deleteJob = db.prepare('DELETE FROM jobs WHERE pk = ? AND id = ? AND etag = ?');
    this.#addDep = db.prepare(
      'INSERT INTO job_deps (pk, dep_id, job_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    );
    this.#dropDep = db.prepare('DELETE FROM job_deps WHERE pk = ? AND dep_id = ? AND job_id = ?');
    const q = {} as Record<keyof typeof JOB_QUERIES, Statement>;
    for (const [name, sql] of Object.entries(JOB_QUERIES) as [keyof typeof JOB_QUERIES, string][]) {
      q[name] = db.prepare(sql);
    }
    for (const name of [
      'claim',
      'list',
      'listAfter',
      'listStage',
      'listStageAfter',
      'blocked',
      'blockedAfter',
      'queuedSets',
      'countByStage',
      'dependents',
      'link',
      'heldBy',
      'finished',
      'finishedAfter',
    ] as const) {
      q[name].raw();
    }
    for (const name of ['due', 'dueAfter', 'dueAfterId', 'withOutbox', 'countHeld'] as const) {
      q[name].pluck();
    }
    this.#q = q;
    const summaries = {} as Record<SummaryQuery, Statement>;
    for (const name of SUMMARY_QUERIES) {
      summaries[name] = db.prepare(summarySql(JOB_QUERIES[name])).raw();
    }
    this.#summaries = summaries;
    this.#loadQueues();
    engine.onRollback(() => {
      this.#queuesStale = true;
      this.#rows.clear();
    });
  }

  /** Rebuilds the queue map from the database (at open, and on first use after a rollback). */
  #loadQueues(): void {
    this.#queues.load(this.#q.queuedSets.all() as unknown[][]);
    this.#queuesStale = false;
  }

  /** Moves a job between queue buckets; a stale map is left alone (it is reloaded whole). */
  #requeue(
    pk: string,
    before: { stage: unknown; capsKey: string } | null,
    after: JobFacts | null,
  ): void {
    if (this.#queuesStale) return;
    if (before?.stage === 'queued') this.#queues.remove(pk, before.capsKey);
    if (after?.stage === 'queued') this.#queues.add(pk, after.capsKey);
  }

  #updateFor(mask: number): Statement {
    let stmt = this.#updates[mask];
    if (stmt === undefined) {
      const set = ['etag = ?', 'deps_key = ?', 'deps_mode = ?'];
      JOB_COLUMNS.forEach((c, i) => {
        if (mask & (1 << i)) set.push(`${c} = ?`);
      });
      set.push('json = ?');
      stmt = this.engine.db.prepare(
        `UPDATE jobs SET ${set.join(', ')} WHERE pk = ? AND id = ? AND etag = ?`,
      );
      this.#updates[mask] = stmt;
    }
    return stmt;
  }

  /** The stored row facts of a job: from the recent rows when there, else read. */
  #rowOf(pk: string, id: string): PrevRow | undefined {
    const row = this.#rows.get(`${pk}\u0000${id}`);
    return row ?? (this.#prev.get(pk, id) as PrevRow | undefined);
  }

  #remember(pk: string, id: string, row: PrevRow | null): void {
    const k = `${pk}\u0000${id}`;
    this.#rows.delete(k);
    if (row === null) return;
    this.#rows.set(k, row);
    if (this.#rows.size > RECENT_ROWS) {
      const oldest = this.#rows.keys().next().value;
      if (oldest !== undefined) this.#rows.delete(oldest);
    }
  }

  /** The stored job's etag, without reading its document (see the port). */
  etag(productId: string, id: string): Promise<string | null> {
    return this.query('etag', () => {
      if (typeof productId !== 'string' || typeof id !== 'string') return null;
      const row = this.#rows.get(`${productId}\u0000${id}`);
      if (row !== undefined) return row[0];
      return (this.#etagOf.get(productId, id) as string | undefined) ?? null;
    });
  }

  /**
   * A create (`etag` null) or an etag-checked replace of a job, for `create`, `replace`
   * and `DocumentStore.commit`: checked and serialized now; `apply` runs the statements
   * (inside the caller's transaction); `after` updates the claim-queue map once the
   * statements succeeded.
   */
  prepareJob(doc: JobDoc, etag: string | null): PreparedJob {
    if (etag !== null && typeof etag !== 'string') {
      throw new StoreFault('invalid', 'etag must be a string');
    }
    const w = this.serialize(doc);
    const f = jobFacts(w.doc);
    const result = { ...w.doc, _etag: w.etag } as unknown as Stored<JobDoc>;
    if (etag === null) {
      return {
        where: ` ${w.pk}/${w.id}`,
        result,
        apply: () => {
          // The insert goes first: it is the only statement that can fail on its own.
          this.#insertJob.run(w.pk, w.id, w.etag, ...factValues(f), f.depsKey, f.depsMode, w.json);
          for (const dep of f.deps) this.#addDep.run(w.pk, dep, w.id);
        },
        after: () => {
          this.#requeue(w.pk, null, f);
          this.#remember(w.pk, w.id, [w.etag, ...factValues(f), f.depsKey]);
        },
      };
    }
    let prev: PrevRow | undefined;
    return {
      where: ` ${w.pk}/${w.id}`,
      result,
      apply: () => {
        prev = this.#rowOf(w.pk, w.id);
        if (prev === undefined) throw new StoreFault('missing', 'not found');
        if (prev[0] !== etag) throw new StoreFault('stale', 'etag does not match');
        const next = factValues(f);
        const args: unknown[] = [w.etag, f.depsKey, f.depsMode];
        let mask = 0;
        for (let i = 0; i < next.length; i++) {
          if (next[i] !== prev[i + 1]) {
            mask |= 1 << i;
            args.push(next[i]);
          }
        }
        args.push(w.json, w.pk, w.id, etag);
        if (this.#updateFor(mask).run(...args).changes === 0) {
          this.#remember(w.pk, w.id, null); // the remembered row was not the stored one
          throw new StoreFault('stale', 'etag does not match');
        }
        const prevDeps = prev[JOB_COLUMNS.length + 1] as string;
        if (prevDeps !== f.depsKey) this.#moveDeps(w.pk, w.id, prevDeps, f.deps);
      },
      after: () => {
        if (prev !== undefined && (prev[1] !== f.stage || prev[4] !== f.capsKey)) {
          this.#requeue(w.pk, { stage: prev[1], capsKey: prev[4] as string }, f);
        }
        this.#remember(w.pk, w.id, [w.etag, ...factValues(f), f.depsKey]);
      },
    };
  }

  override async create(doc: JobDoc): Promise<Stored<JobDoc>> {
    let where = '';
    try {
      const p = this.prepareJob(doc, null);
      where = p.where;
      this.engine.write(p.apply);
      p.after();
      return p.result;
    } catch (e) {
      throw mapError(e, `${this.spec.name}.create${where}`);
    }
  }

  override async replace(doc: JobDoc, etag: string): Promise<Stored<JobDoc>> {
    let where = '';
    try {
      if (typeof etag !== 'string') throw new StoreFault('invalid', 'etag must be a string');
      const p = this.prepareJob(doc, etag);
      where = p.where;
      this.engine.assertOpen();
      this.engine.write(p.apply);
      p.after();
      return p.result;
    } catch (e) {
      throw mapError(e, `${this.spec.name}.replace${where}`);
    }
  }

  override async delete(partitionKey: string, id: string, etag?: string): Promise<void> {
    const where = ` ${String(partitionKey)}/${String(id)}`;
    try {
      this.engine.assertOpen();
      if (etag !== undefined && typeof etag !== 'string') {
        throw new StoreFault('invalid', 'etag must be a string');
      }
      const prev =
        typeof partitionKey === 'string' && typeof id === 'string'
          ? this.#rowOf(partitionKey, id)
          : undefined;
      if (prev === undefined) throw new StoreFault('missing', 'not found');
      if (etag !== undefined && prev[0] !== etag) {
        throw new StoreFault('stale', 'etag does not match');
      }
      const prevDeps = prev[JOB_COLUMNS.length + 1] as string;
      this.engine.write(() => {
        if (this.#deleteJob.run(partitionKey, id, prev[0]).changes === 0) {
          throw new StoreFault('stale', 'etag does not match');
        }
        if (prevDeps !== '[]') this.#moveDeps(partitionKey, id, prevDeps, []);
      });
      this.#requeue(partitionKey, { stage: prev[1], capsKey: prev[4] as string }, null);
      this.#remember(partitionKey, id, null);
    } catch (e) {
      throw mapError(e, `${this.spec.name}.delete${where}`);
    }
  }

  /** Replaces the job's rows in job_deps: `before` is the stored deps_key. */
  #moveDeps(pk: string, id: string, before: string, after: readonly string[]): void {
    const keep = new Set(after);
    for (const dep of JSON.parse(before) as string[]) {
      if (!keep.has(dep)) this.#dropDep.run(pk, dep, id);
    }
    for (const dep of after) this.#addDep.run(pk, dep, id);
  }

  claimCandidates(q: ClaimQuery): Promise<Stored<JobDoc>[]> {
    return this.query('claimCandidates', () => {
      const limit = requireLimit(q.limit, 0);
      const now = requireString(q.now, 'now');
      if (this.#queuesStale) this.#loadQueues();
      const buckets = this.#queues.buckets(q.productId);
      if (buckets === undefined || limit === 0) return [];
      const have = new Set(q.capabilities);
      // One index seek per distinct capability set the factory satisfies, each in claim
      // order; then the best `limit` of their union.
      let rows: ClaimRow[] | undefined;
      let merged = false;
      for (const bucket of buckets.values()) {
        if (!bucket.caps.every((c) => have.has(c))) continue;
        const found = this.#q.claim.all(q.productId, bucket.key, now, limit) as ClaimRow[];
        if (rows === undefined) rows = found;
        else {
          for (const r of found) rows.push(r);
          merged = true;
        }
      }
      if (rows === undefined) return [];
      if (merged) {
        rows.sort(compareClaimRows);
        if (rows.length > limit) rows.length = limit;
      }
      return rows.map((r) => JSON.parse(r[3]) as Stored<JobDoc>);
    });
  }

  list<V extends JobListView = 'full'>(q: JobListQuery<V>): Promise<Page<Stored<JobOfView<V>>>> {
    return this.query('list', () => {
      const limit = requireLimit(q.limit, 1);
      const { view, maxBytes } = jobListOptions(q);
      const after =
        q.cursor === undefined || q.cursor === null ? undefined : listCursor.decode(q.cursor);
      const sql = view === 'summary' ? this.#summaries : this.#q;
      const pk = key(q.productId);
      const [stmt, params] =
        q.stage === undefined
          ? after === undefined
            ? [sql.list, [pk]]
            : [sql.listAfter, [pk, after[0], after[0], after[1]]]
          : after === undefined
            ? [sql.listStage, [pk, key(q.stage)]]
            : [sql.listStageAfter, [pk, key(q.stage), after[0], after[0], after[1]]];
      const { rows, more } = budgetedRows(stmt, params, limit, maxBytes);
      return pageOf<Stored<JobOfView<V>>>(rows, limit, listCursor, more);
    });
  }

  listBlocked(q: PageRequest): Promise<Page<JobLink>> {
    return this.query('listBlocked', () => {
      const limit = requireLimit(q.limit, 1);
      const after =
        q.cursor === undefined || q.cursor === null ? undefined : blockedCursor.decode(q.cursor);
      const rows = (
        after === undefined
          ? this.#q.blocked.all(limit + 1)
          : this.#q.blockedAfter.all(after[0], after[1], after[2], limit + 1)
      ) as [number, string, string, string, string, string][];
      const more = rows.length > limit;
      if (more) rows.length = limit;
      const last = rows.at(-1);
      return {
        items: rows.map(([seq, id, pk, stage, deps, mode]) =>
          linkOf([pk, id, stage, seq, deps, mode]),
        ),
        nextCursor: more && last ? blockedCursor.encode([last[0], last[1], last[2]]) : null,
      };
    });
  }

  dependents(productId: string, jobId: string): Promise<JobLink[]> {
    return this.query('dependents', () =>
      (this.#q.dependents.all(key(productId), key(jobId)) as LinkRow[]).map(linkOf),
    );
  }

  links(productId: string, ids: readonly string[]): Promise<JobLink[]> {
    return this.query('links', () => {
      if (!Array.isArray(ids)) throw new StoreFault('invalid', 'ids must be an array');
      const out: JobLink[] = [];
      for (const id of new Set(ids)) {
        const row = this.#q.link.get(key(productId), key(id)) as LinkRow | undefined;
        if (row !== undefined) out.push(linkOf(row));
      }
      return out;
    });
  }

  heldBy(
    productId: string,
    factoryId: string,
    limit: number,
  ): Promise<Array<{ id: string; seq: number }>> {
    return this.query('heldBy', () => {
      const n = requireLimit(limit, 0);
      const rows = this.#q.heldBy.all(key(productId), key(factoryId)) as [string, number][];
      rows.sort((a, b) => a[1] - b[1] || compareStrings(a[0], b[0]));
      return rows.slice(0, n).map(([id, seq]) => ({ id, seq }));
    });
  }

  due(q: {
    now: string;
    limit: number;
    after?: { dueAt: string; id: string; productId?: string };
  }): Promise<Stored<JobDoc>[]> {
    return this.query('due', () => {
      const limit = requireLimit(q.limit, 0);
      const now = requireString(q.now, 'now');
      if (limit === 0) return [];
      const a = q.after;
      let rows: string[];
      if (a === undefined) rows = this.#q.due.all(now, limit) as string[];
      else {
        const dueAt = requireString(a.dueAt, 'after.dueAt');
        const id = requireString(a.id, 'after.id');
        // With a product, resume after exactly that job; without one (the port's shape),
        // after every job at (dueAt, id).
        rows = (
          a.productId === undefined
            ? this.#q.dueAfterId.all(now, dueAt, id, limit)
            : this.#q.dueAfter.all(
                now,
                dueAt,
                id,
                requireString(a.productId, 'after.productId'),
                limit,
              )
        ) as string[];
      }
      return rows.map((json) => JSON.parse(json) as Stored<JobDoc>);
    });
  }

  withOutbox(q: { limit: number }): Promise<Stored<JobDoc>[]> {
    return this.query('withOutbox', () => {
      const limit = requireLimit(q.limit, 0);
      if (limit === 0) return [];
      return (this.#q.withOutbox.all(limit) as string[]).map(
        (json) => JSON.parse(json) as Stored<JobDoc>,
      );
    });
  }

  countHeld(productId: string, factoryId: string): Promise<number> {
    return this.query(
      'countHeld',
      () => this.#q.countHeld.get(key(productId), key(factoryId)) as number,
    );
  }

  countByStage(): Promise<Array<{ productId: string; stage: Stage; count: number }>> {
    return this.query('countByStage', () =>
      (this.#q.countByStage.all() as [string, Stage, number][]).map(
        ([productId, stage, count]) => ({ productId, stage, count }),
      ),
    );
  }

  // --- Retention (issue 14) -------------------------------------------------------

  finishedBefore(q: {
    before: string;
    limit: number;
    after?: FinishedJobKey;
  }): Promise<FinishedJob[]> {
    return this.query('finishedBefore', () => {
      const limit = requireLimit(q.limit, 0);
      const before = requireString(q.before, 'before');
      if (limit === 0) return [];
      const a = q.after;
      const rows = (
        a === undefined
          ? this.#q.finished.all(before, limit)
          : this.#q.finishedAfter.all(
              before,
              requireString(a.finishedAt, 'after.finishedAt'),
              requireString(a.id, 'after.id'),
              requireString(a.productId, 'after.productId'),
              limit,
            )
      ) as [string, string, string, Stage][];
      return rows.map(([finishedAt, id, productId, stage]) => ({
        finishedAt,
        id,
        productId,
        stage,
      }));
    });
  }

  /**
   * The deletion of a job for `DocumentStore.purgeJob`, checked now (null: no such job;
   * `stale` when its etag is not `etag`): `apply` deletes the row and its `job_deps`
   * rows inside the caller's transaction, `after` forgets it once that succeeded.
   */
  prepareRemove(pk: string, id: string, etag: string): { apply(): void; after(): void } | null {
    const prev = this.#rowOf(pk, id);
    if (prev === undefined) return null;
    if (prev[0] !== etag) throw new StoreFault('stale', 'etag does not match');
    const prevDeps = prev[JOB_COLUMNS.length + 1] as string;
    return {
      apply: () => {
        if (this.#deleteJob.run(pk, id, etag).changes === 0) {
          throw new StoreFault('stale', 'etag does not match');
        }
        if (prevDeps !== '[]') this.#moveDeps(pk, id, prevDeps, []);
      },
      after: () => {
        this.#requeue(pk, { stage: prev[1], capsKey: prev[4] as string }, null);
        this.#remember(pk, id, null);
      },
    };
  }
}

// ---------------------------------------------------------------------------
// Containers listed per partition in one order
// ---------------------------------------------------------------------------

/** How a container's `list(partition, page)` is ordered: key columns and their kinds. */
interface ListSpec {
  readonly tag: string;
  /** Order columns after `pk`, ending with `id`. */
  readonly order: readonly string[];
  readonly parts: readonly CursorPart[];
}

/** A container whose `list(partition, page)` follows one per-partition order. */
class ListedContainer<T extends { id: string }> extends SqliteContainer<T> {
  readonly #first: Statement;
  readonly #after: Statement;
  readonly #cursor: CursorCodec;

  constructor(engine: Engine, etags: RandomEtags, spec: TableSpec, list: ListSpec) {
    super(engine, etags, spec);
    const cols = list.order.join(', ');
    const t = spec.table;
    const db = engine.db;
    this.#first = db
      .prepare(`SELECT ${cols}, json FROM ${t} WHERE pk = ? ORDER BY ${cols} ${LIMIT}`)
      .raw();
    const tuple = list.order.length === 1 ? cols : `(${cols})`;
    const marks = list.order.map(() => '?').join(', ');
    this.#after = db
      .prepare(
        `SELECT ${cols}, json FROM ${t} WHERE pk = ? AND ${tuple} > ${list.order.length === 1 ? marks : `(${marks})`} ORDER BY ${cols} ${LIMIT}`,
      )
      .raw();
    this.#cursor = cursorCodec(list.tag, list.parts);
  }

  list(partitionKey: string, q: PageRequest): Promise<Page<Stored<T>>> {
    return this.query('list', () => {
      const limit = requireLimit(q.limit, 1);
      const after =
        q.cursor === undefined || q.cursor === null ? undefined : this.#cursor.decode(q.cursor);
      const rows = (
        after === undefined
          ? this.#first.all(key(partitionKey), limit + 1)
          : this.#after.all(key(partitionKey), ...after, limit + 1)
      ) as unknown[][];
      return pageOf<Stored<T>>(rows, limit, this.#cursor);
    });
  }
}

const noColumns = { columns: [], values: () => [] } as const;

// -- Stale factories across products -------------------------------------------------

const beatCursor = cursorCodec('factories.heartbeatBefore', ['string', 'string', 'string']);

/** The stale-factory walk: a range of `factories_heartbeat`, in its order (plans tested). */
export const FACTORY_QUERIES = {
  heartbeatBefore: `SELECT heartbeat_at, pk, id, json FROM factories WHERE heartbeat_at < ?
    ORDER BY heartbeat_at, pk, id ${LIMIT}`,
  heartbeatBeforeAfter: `SELECT heartbeat_at, pk, id, json FROM factories WHERE heartbeat_at < ?
    AND (heartbeat_at, pk, id) > (?, ?, ?) ORDER BY heartbeat_at, pk, id ${LIMIT}`,
} as const;

/** Factories: listed per product by id, and across products by last heartbeat. */
class SqliteFactories extends ListedContainer<FactoryDoc> implements FactoriesContainer {
  readonly #first: Statement;
  readonly #after: Statement;

  constructor(engine: Engine, etags: RandomEtags) {
    super(
      engine,
      etags,
      {
        name: 'factories',
        table: 'factories',
        partitionKey: CONTAINERS.factories.partitionKey,
        columns: ['heartbeat_at'],
        values: (doc) => [typeof doc.lastHeartbeatAt === 'string' ? doc.lastHeartbeatAt : null],
      },
      { tag: 'factories.list', order: ['id'], parts: ['string'] },
    );
    this.#first = engine.db.prepare(FACTORY_QUERIES.heartbeatBefore).raw();
    this.#after = engine.db.prepare(FACTORY_QUERIES.heartbeatBeforeAfter).raw();
  }

  heartbeatBefore(cutoff: string, q: PageRequest): Promise<Page<Stored<FactoryDoc>>> {
    return this.query('heartbeatBefore', () => {
      const before = requireString(cutoff, 'cutoff');
      const limit = requireLimit(q.limit, 1);
      const after =
        q.cursor === undefined || q.cursor === null ? undefined : beatCursor.decode(q.cursor);
      const rows = (
        after === undefined
          ? this.#first.all(before, limit + 1)
          : this.#after.all(before, ...after, limit + 1)
      ) as unknown[][];
      return pageOf<Stored<FactoryDoc>>(rows, limit, beatCursor);
    });
  }
}

class SqliteEvents extends SqliteContainer<EventDoc> implements EventsContainer {
  readonly #append: Statement;
  readonly #list: Statement;

  constructor(engine: Engine, etags: RandomEtags) {
    super(engine, etags, {
      name: 'events',
      table: 'events',
      partitionKey: CONTAINERS.events.partitionKey,
      columns: ['seq'],
      values: (doc) => [requireNumber(doc.seq, 'event.seq')],
      // A job's events in stream order, one B-tree (schema v3): ids are read by a scan
      // of the job's events, which the append path never needs.
      key: 'pk, seq',
    });
    const db = engine.db;
    this.#append = db.prepare(
      'INSERT INTO events (pk, id, etag, seq, json) VALUES (?, ?, ?, ?, ?) ON CONFLICT (pk, seq) DO NOTHING',
    );
    this.#list = db
      .prepare(`SELECT json FROM events WHERE pk = ? AND seq > ? ORDER BY seq ${LIMIT}`)
      .pluck();
  }

  async append(doc: EventDoc): Promise<boolean> {
    let where = '';
    try {
      const w = this.serialize(doc);
      where = ` ${w.pk}/${w.id}`;
      const seq = requireNumber(w.doc.seq, 'event.seq');
      const result = this.engine.write(() => this.#append.run(w.pk, w.id, w.etag, seq, w.json));
      return result.changes > 0;
    } catch (e) {
      throw mapError(e, `events.append${where}`);
    }
  }

  list(jobId: string, q: { afterSeq?: number; limit: number }): Promise<EventDoc[]> {
    return this.query('list', () => {
      const limit = requireLimit(q.limit, 0);
      const afterSeq = q.afterSeq === undefined ? 0 : requireNumber(q.afterSeq, 'afterSeq');
      if (limit === 0) return [];
      return (this.#list.all(key(jobId), afterSeq, limit) as string[]).map((json) => {
        // The port promises plain EventDocs here (strict schema), so drop the etag.
        const { _etag: _, ...event } = JSON.parse(json) as Stored<EventDoc>;
        return event;
      });
    });
  }
}

// ---------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------

class SqliteDocumentStore implements DocumentStore {
  readonly kind = 'sqlite';
  readonly path: string;
  readonly jobs: JobsContainer;
  readonly runs: RunsContainer;
  readonly leases: LeasesContainer;
  readonly factories: FactoriesContainer;
  readonly profiles: ProfilesContainer;
  readonly events: EventsContainer;
  readonly artifacts: ArtifactsContainer;
  readonly #engine: Engine;
  readonly #ping: Statement;
  readonly #containers: {
    jobs: SqliteJobs;
    events: SqliteEvents;
    runs: SqliteContainer<RunDoc>;
    leases: SqliteContainer<LeaseDoc>;
    artifacts: SqliteContainer<ArtifactDoc>;
  };
  /** Runs a function in a nested transaction (a SAVEPOINT inside the open batch). */
  readonly #unit: (fn: () => void) => void;

  constructor(db: DB, path: string) {
    const engine = new Engine(db);
    // 96 random bits per write: an etag never matches another version (of this store,
    // another one, or before a restart) and tells nothing of anyone else's writes.
    const etags = new RandomEtags('s');
    this.#engine = engine;
    this.path = path;
    this.#ping = db.prepare('SELECT 1').pluck();
    const jobs = new SqliteJobs(engine, etags);
    this.jobs = jobs;
    const runs = new ListedContainer<RunDoc>(
      engine,
      etags,
      {
        name: 'runs',
        table: 'runs',
        partitionKey: CONTAINERS.runs.partitionKey,
        columns: ['attempt'],
        values: (doc) => [requireNumber(doc.attempt, 'run.attempt')],
      },
      { tag: 'runs.list', order: ['attempt', 'id'], parts: ['number', 'string'] },
    );
    this.runs = runs;
    const leases = new SqliteContainer<LeaseDoc>(engine, etags, {
      name: 'leases',
      table: 'leases',
      partitionKey: CONTAINERS.leases.partitionKey,
      ...noColumns,
    });
    this.leases = leases;
    this.factories = new SqliteFactories(engine, etags);
    this.profiles = new ListedContainer<ProfileDoc>(
      engine,
      etags,
      {
        name: 'profiles',
        table: 'profiles',
        partitionKey: CONTAINERS.profiles.partitionKey,
        ...noColumns,
      },
      { tag: 'profiles.list', order: ['id'], parts: ['string'] },
    );
    const events = new SqliteEvents(engine, etags);
    this.events = events;
    const artifacts = new ListedContainer<ArtifactDoc>(
      engine,
      etags,
      {
        name: 'artifacts',
        table: 'artifacts',
        partitionKey: CONTAINERS.artifacts.partitionKey,
        columns: ['created_at'],
        values: (doc) => [requireString(doc.createdAt, 'artifact.createdAt')],
      },
      { tag: 'artifacts.list', order: ['created_at', 'id'], parts: ['string', 'string'] },
    );
    this.artifacts = artifacts;
    this.#containers = { jobs, events, runs, leases, artifacts };
    this.#unit = db.transaction((fn: () => void) => fn());
  }

  /**
   * A job and its derived documents in one step of the open batch: a SAVEPOINT inside
   * the group commit's transaction, so a failing statement undoes the whole step (and
   * only it), and everything of the step is in the same durable commit.
   */
  async commit(c: JobCommit): Promise<Stored<JobDoc>> {
    let where = '';
    try {
      const k = this.#containers;
      const job = k.jobs.prepareJob(c.job, c.etag);
      where = job.where;
      const writes = [
        job.apply,
        ...c.events.map((e) => k.events.prepareWrite(e, 'insert')),
        ...c.runs.map((r) => k.runs.prepareWrite(r, 'upsert')),
        ...(c.lease === null ? [] : [k.leases.prepareWrite(c.lease, 'upsert')]),
        ...c.artifacts.map((a) => k.artifacts.prepareWrite(a, 'upsert')),
      ];
      this.#engine.assertOpen();
      this.#engine.write(() =>
        this.#unit(() => {
          for (const w of writes) w();
        }),
      );
      job.after();
      return job.result;
    } catch (e) {
      throw mapError(e, `commit${where}`);
    }
  }

  /**
   * Several commits in one step of the open batch (one SAVEPOINT): a failing statement
   * of any of them undoes all of them, and all are in the same durable commit.
   */
  async commitMany(commits: readonly JobCommit[]): Promise<Stored<JobDoc>[]> {
    let where = '';
    try {
      const k = this.#containers;
      const jobs: ReturnType<SqliteJobs['prepareJob']>[] = [];
      const writes: (() => void)[] = [];
      for (const c of commits) {
        const job = k.jobs.prepareJob(c.job, c.etag);
        jobs.push(job);
        writes.push(
          () => {
            where = job.where;
            job.apply();
          },
          ...c.events.map((e) => k.events.prepareWrite(e, 'insert')),
          ...c.runs.map((r) => k.runs.prepareWrite(r, 'upsert')),
          ...(c.lease === null ? [] : [k.leases.prepareWrite(c.lease, 'upsert')]),
          ...c.artifacts.map((a) => k.artifacts.prepareWrite(a, 'upsert')),
        );
      }
      if (jobs.length === 0) return [];
      this.#engine.assertOpen();
      this.#engine.write(() =>
        this.#unit(() => {
          for (const w of writes) w();
        }),
      );
      for (const job of jobs) job.after();
      return jobs.map((job) => job.result);
    } catch (e) {
      throw mapError(e, `commitMany${where}`);
    }
  }

  get commits(): number {
    return this.#engine.commits;
  }

  mark(): number {
    return this.#engine.mark();
  }

  /** Resolves when the batch open now is committed (at once when none is); see `Engine.sync`. */
  sync(from?: number): Promise<void> {
    return this.#engine.sync(from);
  }

  async ping(): Promise<void> {
    try {
      this.#engine.assertOpen();
      this.#ping.get();
    } catch (e) {
      throw mapError(e, 'ping');
    }
  }

  /** A consistent copy of the database in the new file `file`, taken online (`online-backup.ts`). */
  async backup(
    file: string,
    options: OnlineBackupOptions = {},
  ): Promise<{ pages: number; bytes: number }> {
    try {
      this.#engine.assertOpen();
      return await onlineBackup(this.#engine, file, options);
    } catch (e) {
      if (options.signal?.aborted && e === options.signal.reason) throw e;
      throw mapError(e, 'backup');
    }
  }

  async close(): Promise<void> {
    try {
      this.#engine.close();
    } catch (e) {
      throw mapError(e, 'close');
    }
  }

  // --- Retention (issue 14) -------------------------------------------------------

  /**
   * The job and every document of its partition in runs, leases, events and artifacts,
   * in one step of the open batch (a SAVEPOINT, as `commit`): all or nothing.
   */
  async purgeJob(productId: string, id: string, etag: string): Promise<PurgedDocuments | null> {
    const where = ` ${String(productId)}/${String(id)}`;
    try {
      const pk = requireString(productId, 'productId');
      const jobId = requireString(id, 'id');
      if (typeof etag !== 'string') throw new StoreFault('invalid', 'etag must be a string');
      this.#engine.assertOpen();
      const k = this.#containers;
      const job = k.jobs.prepareRemove(pk, jobId, etag);
      if (job === null) return null;
      const purged: PurgedDocuments = { runs: 0, leases: 0, events: 0, artifacts: 0 };
      this.#engine.write(() =>
        this.#unit(() => {
          job.apply();
          purged.runs = k.runs.deletePartition(jobId);
          purged.leases = k.leases.deletePartition(jobId);
          purged.events = k.events.deletePartition(jobId);
          purged.artifacts = k.artifacts.deletePartition(jobId);
        }),
      );
      job.after();
      return purged;
    } catch (e) {
      throw mapError(e, `purgeJob${where}`);
    }
  }
}

const connections = new WeakMap<object, DB>();

/**
 * Makes the database private before SQLite touches it, whatever the process's umask:
 * every folder this call creates is 0700 (a folder that exists keeps its mode), and a
 * missing database file is created empty with mode 0600 (an empty file is a new
 * database to SQLite). SQLite creates the WAL and journal files with the database
 * file's mode, so they are 0600 too. An existing database keeps its mode: it is the
 * operator's (`chmod 600 fleet.db*` tightens one made by an earlier Fleet).
 */
function preparePrivateFile(path: string): void {
  const folder = dirname(path);
  const first = mkdirSync(folder, { recursive: true, mode: 0o700 });
  // mkdir's mode is filtered by the umask; set the created folders' mode exactly.
  for (let dir = folder; first !== undefined; dir = dirname(dir)) {
    chmodSync(dir, 0o700);
    if (dir === first || dirname(dir) === dir) break;
  }
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (e) {
    if ((e as { code?: string }).code === 'EEXIST') return;
    throw e;
  }
  try {
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

/**
 * The better-sqlite3 connection of a store opened by {@link openSqliteStore}, for tests
 * and diagnostics (EXPLAIN QUERY PLAN, PRAGMA). Writing through it bypasses the store's
 * indexes and group commit: never do it in production code.
 */
export function sqliteConnection(store: DocumentStore): DB {
  const db = connections.get(store);
  if (db === undefined) throw new Error('not a store opened by openSqliteStore');
  return db;
}

/**
 * Opens (creating it and its folder if needed) the SQLite store at `options.path`.
 *
 * Guarantees, beyond the port's (checked by the contract suite):
 * - WAL journal; `synchronous=FULL` by default, so a write whose `sync()` resolved
 *   survives a power loss (`NORMAL`: it survives a process crash; the last commits may
 *   be lost on power loss);
 * - the schema is created or migrated on open; a database of a newer schema version is
 *   refused with `STORE_UNAVAILABLE` ("... newer than this Fleet build supports ...");
 * - one process at a time: a database another store object holds (in this process or
 *   another) is refused at open with `STORE_UNAVAILABLE` ("in use by another Fleet
 *   process"); the lock is released when the store is closed or its process ends;
 * - group commit: writes apply at once and are committed together at the end of the
 *   event-loop turn; `sync()` resolves when they are durable (see the file header);
 * - claim selection is an index seek per capability set and due lookup an index range,
 *   whatever the number of other jobs;
 * - `close()` commits the open batch first; afterwards every call fails with
 *   `STORE_UNAVAILABLE`.
 *
 * @throws FleetError `STORE_UNAVAILABLE` when the file cannot be opened, is locked, or
 *   has a newer schema; `VALIDATION` for an unknown `synchronous` value.
 */
export function openSqliteStore(options: SqliteStoreOptions = {}): SqliteStore {
  const synchronous = options.synchronous ?? 'FULL';
  if (synchronous !== 'FULL' && synchronous !== 'NORMAL') {
    throw new FleetError(
      'VALIDATION',
      `synchronous must be 'FULL' or 'NORMAL', not ${String(synchronous)}`,
    );
  }
  const given = options.path ?? DEFAULT_PATH;
  if (typeof given !== 'string' || given.length === 0) {
    throw new FleetError('VALIDATION', 'path must be a non-empty string');
  }
  const inMemory = given === ':memory:';
  const path = inMemory ? given : resolve(given);
  let db: DB | undefined;
  try {
    if (!inMemory) preparePrivateFile(path);
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    // Exclusive before WAL: the WAL index then lives in process memory, and the lock
    // taken below is held until close.
    db.pragma('locking_mode = EXCLUSIVE');
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (!inMemory && mode !== 'wal') {
      throw new FleetError(
        'STORE_UNAVAILABLE',
        `open ${path}: could not switch to WAL (${String(mode)})`,
      );
    }
    db.pragma(`synchronous = ${synchronous}`);
    db.pragma(`cache_size = -${CACHE_KIB}`);
    db.pragma('temp_store = MEMORY');
    db.pragma(`wal_autocheckpoint = ${CHECKPOINT_PAGES}`);
    db.pragma(`journal_size_limit = ${WAL_LIMIT_BYTES}`);
    // Take the exclusive lock now, so a second opener fails here and not mid-run.
    db.exec('BEGIN EXCLUSIVE; COMMIT');
    migrate(db);
    const store = new SqliteDocumentStore(db, path);
    connections.set(store, db);
    return store;
  } catch (e) {
    try {
      db?.close();
    } catch {
      // Already failing; the first error is the one to report.
    }
    throw mapError(e, `open ${path}`);
  }
}
