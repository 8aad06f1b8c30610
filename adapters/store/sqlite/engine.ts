/**
 * The SQLite store's engine: one better-sqlite3 connection, group commit, and the one
 * place where SQLite failures become `FleetError` codes.
 *
 * Group commit. Every write (create, replace, delete, append) runs at once, inside the
 * transaction of the current batch, so its outcome (a new etag, `PRECONDITION_FAILED`,
 * `ALREADY_EXISTS`, `NOT_FOUND`) is known when the call returns and later reads on this
 * connection see it. The first write after a commit opens the batch (`BEGIN IMMEDIATE`)
 * and schedules its `COMMIT` two `setImmediate`s later, that is, after the callers of
 * this event-loop turn have run out of synchronous and promise work *and* one more turn
 * of I/O has been read (requests that arrived meanwhile join the same commit: over HTTP
 * with 32 factories about 8% more transitions/s, measured; a lone caller loses nothing
 * measurable, as the extra turn has no I/O to wait for). `sync()` resolves when
 * the batch open at the time of the call is committed. The coordinator awaits `sync()`
 * before answering a client, so all the claims and transitions of one turn share one
 * fsync. Measured here (2 cores, ext4, fdatasync ≈ 0.2 ms; 20k queued jobs; claims
 * through `Coordinator.claimNextJob`): 64 concurrent claimers make one commit per 64
 * claims (a claim is 9 store calls, 5 of them writes) and about 3,300 durable claims/s
 * on FULL, against about 1,200/s for a single claimer, whose every claim waits for its
 * own commit; the memory store does about 5,500/s on the same run. A commit of 64
 * claims writes about 480 WAL pages (about 6 ms: the claim path dirties some 8 random
 * index and table pages per claim), and costs about the same on NORMAL: on this machine
 * FULL is within 10% of NORMAL.
 * - A write that fails on its own (etag mismatch, duplicate id, invalid document) fails
 *   that call only; the batch goes on (SQLite undoes just the failed statement).
 * - If `COMMIT` fails, the batch is rolled back and every `sync()` waiting for it
 *   rejects with `STORE_UNAVAILABLE`; until the next write opens a new batch, `sync()`
 *   keeps rejecting, so nobody acknowledges a write of that batch by accident. The
 *   next write starts a new transaction.
 * - Any other failure inside a write (I/O error, disk full) also ends the batch that
 *   way: a half-applied write must never be committed.
 * - A batch that reaches {@link MAX_BATCH_WRITES} writes is committed on the spot, so a
 *   long run of writes that never yields does not grow one transaction without bound.
 * Reads never open a transaction.
 *
 */
import Database from 'better-sqlite3';
import { FleetError } from '../../../runtime/index.js';
import { FAULT_CODES, StoreFault } from '../shared/store-fault.js';

export type DB = Database.Database;
export type Statement = Database.Statement;

/** A batch is committed on the spot when it holds this many writes. */
export const MAX_BATCH_WRITES = 10_000;

// ---------------------------------------------------------------------------
// Errors: every failure leaves through `mapError`.
// ---------------------------------------------------------------------------

/** SQLite result codes (primary, as prefixes of extended codes) meaning "the store cannot serve". */
const UNAVAILABLE_CODES = [
  'SQLITE_IOERR',
  'SQLITE_FULL',
  'SQLITE_CANTOPEN',
  'SQLITE_READONLY',
  'SQLITE_CORRUPT',
  'SQLITE_NOTADB',
  'SQLITE_NOMEM',
  'SQLITE_PROTOCOL',
  'SQLITE_PERM',
  'SQLITE_AUTH',
  'SQLITE_INTERRUPT',
  'SQLITE_ABORT',
];

/** The detail of the refusal when another process holds the database. */
export const IN_USE_DETAIL = 'the database is in use by another Fleet process';

/**
 * The one place where the SQLite store's failures become `FleetError` codes: a
 * duplicate key is `ALREADY_EXISTS`, a lock held by someone else, an I/O failure, a
 * full disk or a closed store `STORE_UNAVAILABLE`, an oversized document
 * `PAYLOAD_TOO_LARGE`; anything unforeseen is `INTERNAL` (with the cause attached).
 */
export function mapError(e: unknown, op: string): FleetError {
  if (e instanceof FleetError) return e;
  if (e instanceof StoreFault) return new FleetError(FAULT_CODES[e.kind], `${op}: ${e.message}`);
  if (e instanceof Database.SqliteError) {
    const code = e.code;
    if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE') {
      return new FleetError('ALREADY_EXISTS', `${op}: already exists`, { cause: e });
    }
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      return new FleetError(
        'STORE_UNAVAILABLE',
        `${op}: ${IN_USE_DETAIL} (one process at a time may open it)`,
        { cause: e },
      );
    }
    if (code === 'SQLITE_TOOBIG') {
      return new FleetError('PAYLOAD_TOO_LARGE', `${op}: the document is too large`, { cause: e });
    }
    if (UNAVAILABLE_CODES.some((c) => code.startsWith(c))) {
      return new FleetError('STORE_UNAVAILABLE', `${op}: ${e.message} (${code})`, { cause: e });
    }
    return new FleetError('INTERNAL', `${op}: unexpected SQLite failure (${code})`, { cause: e });
  }
  if (e instanceof Error && 'syscall' in e) {
    // The file system refused (creating the folder, opening the file).
    return new FleetError('STORE_UNAVAILABLE', `${op}: ${e.message}`, { cause: e });
  }
  return new FleetError('INTERNAL', `${op}: unexpected failure in the SQLite store`, { cause: e });
}

/** True for a failure confined to one call: the batch it ran in is still sound. */
const isCallLevel = (e: unknown): boolean =>
  e instanceof StoreFault ||
  (e instanceof Database.SqliteError && e.code.startsWith('SQLITE_CONSTRAINT'));

// ---------------------------------------------------------------------------
// The engine: connection, group commit, lifecycle
// ---------------------------------------------------------------------------

/** The writes of one transaction and the promise its `sync()` callers wait on. */
export class Batch {
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (e: FleetError) => void;
  writes = 0;
  /** Position in the store's sequence of batches (1, 2, 3...). */
  readonly number: number;
  constructor(number: number) {
    this.number = number;
    this.promise = new Promise<void>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    // A failed batch nobody synced on is not an unhandled rejection: its writers were
    // told nothing durable, and the failure is reported to whoever syncs next.
    this.promise.catch(() => {});
  }
}

const RESOLVED: Promise<void> = Promise.resolve();

/** The connection and the group-commit state shared by a store's containers. */
export class Engine {
  readonly db: DB;
  closed = false;
  commits = 0;
  /** The open transaction, if any. */
  #batch: Batch | null = null;
  /** The promise of the last batch that ended (what `sync()` returns when none is open). */
  #ended: Promise<void> = RESOLVED;
  /** Number of the last batch opened (0: none yet). */
  #opened = 0;
  /** Number of the last batch whose commit failed (0: none), and why. */
  #lastFailed = 0;
  #lastFailure: FleetError | null = null;
  readonly #begin: Statement;
  readonly #commit: Statement;
  readonly #rollback: Statement;
  /** Marks in-memory state derived from the database stale after a rollback (no I/O). */
  readonly #afterRollback: (() => void)[] = [];

  constructor(db: DB) {
    this.db = db;
    this.#begin = db.prepare('BEGIN IMMEDIATE');
    this.#commit = db.prepare('COMMIT');
    this.#rollback = db.prepare('ROLLBACK');
  }

  onRollback(fn: () => void): void {
    this.#afterRollback.push(fn);
  }

  assertOpen(): void {
    if (this.closed) throw new StoreFault('closed', 'the store is closed');
  }

  /**
   * Runs `fn` (synchronous SQLite work) inside the open batch, opening one if none is.
   * A failure confined to the call leaves the batch alone; any other failure ends the
   * batch (rolled back, its `sync()` waiters rejected).
   */
  write<R>(fn: () => R): R {
    this.assertOpen();
    let batch = this.#batch;
    if (batch !== null && batch.writes >= MAX_BATCH_WRITES) {
      this.#end(batch);
      batch = null;
    }
    if (batch === null) batch = this.#open();
    try {
      const result = fn();
      batch.writes++;
      return result;
    } catch (e) {
      if (!this.db.inTransaction) this.#fail(batch, e, false);
      else if (!isCallLevel(e)) this.#fail(batch, e, true);
      throw e;
    }
  }

  /** The number the next write's batch will have, or has if one is open (see `sync`). */
  mark(): number {
    return this.#batch?.number ?? this.#opened + 1;
  }

  /**
   * Without `from`: resolves when the batch open now (or else the last one) is committed.
   * With `from` (a `mark()`): resolves when every write made since that mark is committed,
   * and rejects if the commit of any batch since then failed, even one that ended before
   * this call (a caller whose writes spanned several batches learns of each failure).
   */
  sync(from?: number): Promise<void> {
    if (this.closed)
      return Promise.reject(mapError(new StoreFault('closed', 'the store is closed'), 'sync'));
    if (from === undefined) return this.#batch?.promise ?? this.#ended;
    const check = (): void => {
      if (this.#lastFailed >= from && this.#lastFailure !== null) throw this.#lastFailure;
    };
    const open = this.#batch;
    if (open === null || open.number < from) {
      try {
        check();
        return RESOLVED;
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return open.promise.then(check);
  }

  /**
   * Commits the open batch now, if there is one, as its scheduled commit would (its
   * waiters resolve, a failure rejects them): the online backup needs a moment with no
   * write transaction open.
   */
  commitNow(): void {
    const batch = this.#batch;
    if (batch !== null) this.#end(batch);
  }

  /** Commits the open batch (its waiters resolve), then closes the connection. */
  close(): void {
    if (this.closed) return;
    const batch = this.#batch;
    if (batch !== null) this.#end(batch);
    this.closed = true;
    this.db.close();
  }

  #open(): Batch {
    this.#begin.run();
    const batch = new Batch(++this.#opened);
    this.#batch = batch;
    // Two turns: see "Group commit" above.
    setImmediate(() => setImmediate(() => this.#end(batch)));
    return batch;
  }

  /** Commits `batch` if it is still the open one. */
  #end(batch: Batch): void {
    if (this.#batch !== batch) return;
    try {
      this.#commit.run();
    } catch (e) {
      this.#fail(batch, e, true);
      return;
    }
    this.#batch = null;
    this.#ended = batch.promise;
    // A batch whose every write failed on its own commits nothing worth counting.
    if (batch.writes > 0) this.commits++;
    batch.resolve();
  }

  /** Ends `batch` without committing: rolls back, invalidates derived state, rejects its waiters. */
  #fail(batch: Batch, cause: unknown, rollback: boolean): void {
    if (this.#batch === batch) this.#batch = null;
    this.#ended = batch.promise;
    if (rollback && this.db.inTransaction) {
      try {
        this.#rollback.run();
      } catch {
        // Nothing more to undo: SQLite rolled back on its own.
      }
    }
    for (const invalidate of this.#afterRollback) invalidate();
    const why = mapError(cause, 'sqlite');
    const failure = new FleetError(
      'STORE_UNAVAILABLE',
      `group commit failed, its writes were rolled back (${why.detail})`,
      { cause },
    );
    this.#lastFailed = batch.number;
    this.#lastFailure = failure;
    batch.reject(failure);
  }
}
