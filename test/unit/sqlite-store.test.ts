/**
 * What the SQLite store guarantees beyond the contract suite: query plans (index seeks,
 * no scans, no sorts), group commit, durability across reopen and crash, schema
 * versions, and the one-process rule.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  FACTORY_QUERIES,
  IN_USE_DETAIL,
  JOB_QUERIES,
  MAX_BATCH_WRITES,
  openSqliteStore,
  SCHEMA_VERSION,
  type SqliteStore,
  sqliteConnection,
} from '../../adapters/store/sqlite/index.js';
import { type ErrorCode, FleetError, isFleetError } from '../../runtime/errors.js';
import type { JobDoc, Stage } from '../../runtime/types.js';
import {
  at,
  makeArtifact,
  makeEvent,
  makeFactory,
  makeJob,
  makeLease,
  makeProfile,
  makeRun,
  T0,
  uid,
} from '../support/docs.js';

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const dirs: string[] = [];
/** A path for a new database file in a new temporary folder (removed after the file's tests). */
function tempDb(name = 'fleet.db'): string {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-sqlite-'));
  dirs.push(dir);
  return join(dir, name);
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Stores opened by a test, closed after it. */
const opened: SqliteStore[] = [];
function open(path = tempDb(), synchronous?: 'FULL' | 'NORMAL'): SqliteStore {
  const store = openSqliteStore({ path, ...(synchronous ? { synchronous } : {}) });
  opened.push(store);
  return store;
}
afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
});

/** The FleetError `fn` throws (or `p` rejects with); fails if there is none. */
async function caught(p: Promise<unknown> | (() => unknown)): Promise<FleetError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (e instanceof FleetError) return e;
    throw e;
  }
  throw new Error('expected a FleetError, nothing was thrown');
}

async function expectCode(
  p: Promise<unknown> | (() => unknown),
  code: ErrorCode,
): Promise<FleetError> {
  const e = await caught(p);
  expect(e.code, e.message).toBe(code);
  return e;
}

/** A queued job of `productId` with `overrides`. */
const job = (productId: string, overrides: Partial<JobDoc> = {}): JobDoc =>
  makeJob({ productId, ...overrides });

// ---------------------------------------------------------------------------
// Child processes (test/support/sqlite-holder.ts)
// ---------------------------------------------------------------------------

const HOLDER = resolve(import.meta.dirname, '../support/sqlite-holder.ts');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

interface Child {
  proc: ChildProcess;
  /** Resolves with the first stdout line matching `re`; rejects if the child exits first. */
  line(re: RegExp): Promise<string>;
  exited: Promise<number | null>;
}

const children: ChildProcess[] = [];
function holder(args: string[], cwd?: string): Child {
  const proc = spawn(process.execPath, ['--import', TSX, HOLDER, ...args], {
    cwd: cwd ?? process.cwd(),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(proc);
  let out = '';
  let err = '';
  const waiters: { re: RegExp; resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  const check = () => {
    for (const l of out.split('\n')) {
      for (const w of [...waiters]) {
        if (w.re.test(l)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
      }
    }
  };
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    check();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((done) => {
    proc.on('exit', (code) => {
      for (const w of waiters.splice(0)) {
        w.reject(new Error(`child exited (${code}) before printing ${w.re}: ${out}${err}`));
      }
      done(code);
    });
  });
  return {
    proc,
    exited,
    line: (re) =>
      new Promise<string>((resolveLine, reject) => {
        waiters.push({ re, resolve: resolveLine, reject });
        check();
      }),
  };
}
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

// ---------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------

describe('sqlite store: opening', () => {
  it('creates the folder and the file on first use, in WAL mode, FULL by default', async () => {
    const path = join(tempDb(), 'deeper', 'still', 'fleet.db');
    const store = open(path);
    expect(store.kind).toBe('sqlite');
    expect(store.path).toBe(path);
    expect(existsSync(path)).toBe(true);
    const db = sqliteConnection(store);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('locking_mode', { simple: true })).toBe('exclusive');
    expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    await store.ping();
  });

  it('runs with synchronous=NORMAL when asked', () => {
    const store = open(tempDb(), 'NORMAL');
    expect(sqliteConnection(store).pragma('synchronous', { simple: true })).toBe(1);
  });

  it('refuses an unknown synchronous mode and an empty path with VALIDATION', async () => {
    await expectCode(
      () => openSqliteStore({ path: tempDb(), synchronous: 'OFF' as 'FULL' }),
      'VALIDATION',
    );
    await expectCode(() => openSqliteStore({ path: '' }), 'VALIDATION');
  });

  it('opens ./data/fleet.db under the current folder when no path is given', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'fleet-cwd-'));
    dirs.push(cwd);
    const child = holder(['default'], cwd);
    const printed = await child.line(/fleet\.db|^error/);
    expect(await child.exited).toBe(0);
    expect(printed).toBe(join(cwd, 'data', 'fleet.db'));
    expect(existsSync(join(cwd, 'data', 'fleet.db'))).toBe(true);
  });

  it('accepts :memory: (for tests)', async () => {
    const store = openSqliteStore({ path: ':memory:' });
    const doc = job(uid('product'));
    await store.jobs.create(doc);
    await store.sync();
    expect((await store.jobs.read(doc.productId, doc.id))?.id).toBe(doc.id);
    expect(store.path).toBe(':memory:');
    await store.close();
  });

  it('maps a file it cannot open to STORE_UNAVAILABLE', async () => {
    // The "file" is a folder.
    const dir = tempDb('a-folder');
    mkdirSync(dir);
    await expectCode(() => openSqliteStore({ path: dir }), 'STORE_UNAVAILABLE');
  });
});

// ---------------------------------------------------------------------------
// Schema versions
// ---------------------------------------------------------------------------

describe('sqlite store: schema', () => {
  const setVersion = (path: string, version: string) => {
    const db = new Database(path);
    db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(version);
    db.close();
  };

  it('records the schema version it created', async () => {
    const store = open();
    const db = sqliteConnection(store);
    expect(db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get()).toBe(
      String(SCHEMA_VERSION),
    );
  });

  it('refuses a database of a newer schema version, and leaves it untouched', async () => {
    const path = tempDb();
    const first = openSqliteStore({ path });
    const doc = job(uid('product'));
    await first.jobs.create(doc);
    await first.close();
    setVersion(path, '999');
    const e = await expectCode(() => openSqliteStore({ path }), 'STORE_UNAVAILABLE');
    expect(e.detail).toContain(
      `database schema version 999 is newer than this Fleet build supports (${SCHEMA_VERSION}); upgrade Fleet`,
    );
    // The refused open released the file and changed nothing.
    setVersion(path, String(SCHEMA_VERSION));
    const again = open(path);
    expect((await again.jobs.read(doc.productId, doc.id))?.id).toBe(doc.id);
  });

  it('refuses a SQLite file that is not a Fleet database', async () => {
    const path = tempDb();
    const db = new Database(path);
    db.exec('CREATE TABLE something_else (x)');
    db.close();
    const e = await expectCode(() => openSqliteStore({ path }), 'STORE_UNAVAILABLE');
    expect(e.detail).toContain('not a Fleet database');
  });
});

// ---------------------------------------------------------------------------
// Query plans
// ---------------------------------------------------------------------------

describe('sqlite store: query plans', () => {
  let store: SqliteStore;
  let db: Database.Database;
  beforeAll(async () => {
    store = openSqliteStore({ path: tempDb() });
    db = sqliteConnection(store);
    // Enough jobs of several products, stages and capability sets that a scan would be
    // a real choice for the planner.
    const stages: Stage[] = ['queued', 'queued', 'blocked', 'assigned', 'shipped', 'failed'];
    for (let p = 0; p < 4; p++) {
      const productId = `plan-product-${p}`;
      for (let i = 0; i < 300; i++) {
        const stage = stages[i % stages.length]!;
        await store.jobs.create(
          job(productId, {
            seq: i,
            stage,
            priority: (['critical', 'high', 'medium', 'low'] as const)[i % 4],
            capabilities: i % 3 === 0 ? ['gpu'] : i % 3 === 1 ? ['node', 'git'] : [],
            dueAt: i % 5 === 0 ? at(i * 1000) : null,
            holderFactoryId: stage === 'assigned' ? `f${i % 7}` : null,
            deps: i % 10 === 0 ? [`plan-dep-${i % 20}`] : [],
          }),
        );
      }
    }
    await store.sync();
  });
  afterAll(async () => {
    await store.close();
  });

  /** The plan of `sql` (parameters bound to null), one line per step. */
  const plan = (sql: string): string => {
    const n = (sql.match(/\?/g) ?? []).length;
    const rows = db
      .prepare(`EXPLAIN QUERY PLAN ${sql}`)
      .all(...Array.from({ length: n }, () => null)) as { detail: string }[];
    return rows.map((r) => r.detail).join('\n');
  };

  /** The plan reads `index` and never scans the jobs table or sorts in a temporary B-tree. */
  const expectSeek = (sql: string, index: string) => {
    const p = plan(sql);
    expect(p, p).toMatch(new RegExp(`INDEX ${index}( |$)`, 'm'));
    expect(p, p).not.toMatch(/SCAN jobs(?! USING (COVERING )?INDEX)/);
    expect(p, p).not.toContain('TEMP B-TREE');
  };

  const checkEveryPlan = () => {
    // Claim selection: a seek by (product, capability set), rows in claim order.
    expect(plan(JOB_QUERIES.claim)).toMatch(
      /^SEARCH jobs USING INDEX jobs_claim \(pk=\? AND caps_key=\?\)$/,
    );
    expectSeek(JOB_QUERIES.claim, 'jobs_claim');
    // Due lookup: a range of jobs_due in (dueAt, id, productId) order.
    expect(plan(JOB_QUERIES.due)).toMatch(/^SEARCH jobs USING INDEX jobs_due \(due_at<\?\)$/);
    expectSeek(JOB_QUERIES.due, 'jobs_due');
    expectSeek(JOB_QUERIES.dueAfter, 'jobs_due');
    expectSeek(JOB_QUERIES.dueAfterId, 'jobs_due');
    // Every other job query reads an index too, without a sort step.
    expectSeek(JOB_QUERIES.list, 'jobs_list');
    expectSeek(JOB_QUERIES.listAfter, 'jobs_list');
    expectSeek(JOB_QUERIES.listStage, 'jobs_list_stage');
    expectSeek(JOB_QUERIES.listStageAfter, 'jobs_list_stage');
    expectSeek(JOB_QUERIES.blocked, 'jobs_blocked');
    expectSeek(JOB_QUERIES.blockedAfter, 'jobs_blocked');
    expectSeek(JOB_QUERIES.withOutbox, 'jobs_outbox');
    expectSeek(JOB_QUERIES.countHeld, 'jobs_held');
    expectSeek(JOB_QUERIES.queuedSets, 'jobs_claim');
    // Dependents: a seek of job_deps, then each job by key (sorting the few found is fine).
    const deps = plan(JOB_QUERIES.dependents);
    expect(deps).toMatch(/SEARCH d USING PRIMARY KEY \(pk=\? AND dep_id=\?\)/);
    expect(deps).toMatch(/SEARCH j USING INDEX sqlite_autoindex_jobs_1 \(pk=\? AND id=\?\)/);
  };

  it('every job query is an index seek or range, without statistics', () => {
    expect(
      db.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'").pluck().get(),
    ).toBe(0);
    checkEveryPlan();
  });

  it('the stale-factory walk across products is a range of factories_heartbeat, unsorted', () => {
    for (const sql of [FACTORY_QUERIES.heartbeatBefore, FACTORY_QUERIES.heartbeatBeforeAfter]) {
      const p = plan(sql);
      expect(p, p).toMatch(
        /^SEARCH factories USING INDEX factories_heartbeat \(.*heartbeat_at<\?\)$/,
      );
      expect(p, p).not.toContain('TEMP B-TREE');
    }
  });

  it('and still after ANALYZE has given the planner statistics', () => {
    db.exec('ANALYZE');
    checkEveryPlan();
  });

  it('the named queries still answer correctly on the seeded data', async () => {
    const claims = await store.jobs.claimCandidates({
      productId: 'plan-product-0',
      capabilities: ['gpu', 'git', 'node'],
      now: T0,
      limit: 5,
    });
    expect(claims.map((j) => j.stage)).toEqual(Array(5).fill('queued'));
    expect(claims.map((j) => j.priority)).toEqual([
      'critical',
      'critical',
      'critical',
      'critical',
      'critical',
    ]);
    const due = await store.jobs.due({ now: at(10_000), limit: 100 });
    const mine = due.filter((j) => j.productId.startsWith('plan-product-'));
    expect(mine.map((j) => j.dueAt)).toEqual([...mine.map((j) => j.dueAt)].sort());
    expect(await store.jobs.countHeld('plan-product-0', 'f1')).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------
// Group commit
// ---------------------------------------------------------------------------

describe('sqlite store: group commit', () => {
  it('writes of one turn share one commit; each caller gets its own outcome', async () => {
    const store = open();
    const productId = uid('product');
    const existing = await store.jobs.create(job(productId, { id: 'existing' }));
    const stale = await store.jobs.create(job(productId, { id: 'stale' }));
    const current = await store.jobs.replace({ ...stale, bodyMd: 'v2' }, stale._etag);
    await store.sync();
    const before = store.commits;

    const docs = Array.from({ length: 20 }, (_, i) => job(productId, { id: `j${i}`, seq: i }));
    const calls = [
      ...docs.map((d) => store.jobs.create(d)),
      store.jobs.replace({ ...stale, bodyMd: 'lost' }, stale._etag), // stale etag
      store.jobs.create(job(productId, { id: 'existing' })), // taken id
      store.jobs.delete(productId, 'nobody'), // absent
      store.jobs.replace({ ...current, bodyMd: 'v3' }, current._etag),
      store.events.append(makeEvent({ jobId: 'existing', seq: 1 })),
    ];
    // Visible to reads at once, before any commit.
    expect((await store.jobs.read(productId, 'j0'))?.id).toBe('j0');
    expect(store.commits).toBe(before);
    const results = await Promise.allSettled(calls);
    await store.sync();
    expect(store.commits).toBe(before + 1);

    const created = results.slice(0, 20).map((r) => {
      if (r.status !== 'fulfilled') throw new Error(`create failed: ${String(r.reason)}`);
      return (r.value as { _etag: string })._etag;
    });
    expect(new Set(created).size).toBe(20);
    const reasons = results
      .slice(20, 23)
      .map((r) => (r.status === 'rejected' && isFleetError(r.reason) ? r.reason.code : r.status));
    expect(reasons).toEqual(['PRECONDITION_FAILED', 'ALREADY_EXISTS', 'NOT_FOUND']);
    expect(results[23]!.status).toBe('fulfilled');
    expect(results[24]!.status).toBe('fulfilled');
    expect((await store.jobs.read(productId, 'existing'))?._etag).toBe(existing._etag);

    // Durable: reopen the file and find every successful write.
    const path = store.path;
    await store.close();
    const again = open(path);
    for (const d of docs) expect((await again.jobs.read(productId, d.id))?.id).toBe(d.id);
    expect((await again.jobs.read(productId, 'stale'))?.bodyMd).toBe('v3');
    expect(await again.events.list('existing', { limit: 10 })).toHaveLength(1);
  });

  it('writes of separate turns are separate commits; sync with nothing open resolves at once', async () => {
    const store = open();
    const productId = uid('product');
    await store.sync();
    const before = store.commits;
    await store.sync();
    expect(store.commits).toBe(before);
    for (let i = 0; i < 3; i++) {
      await store.jobs.create(job(productId));
      await store.sync();
    }
    expect(store.commits).toBe(before + 3);
    // Reads never open a transaction.
    await store.jobs.list({ productId, limit: 10 });
    await store.sync();
    expect(store.commits).toBe(before + 3);
  });

  it('many concurrent coordinator-style callers: one commit per turn, every sync resolves', async () => {
    const store = open();
    const productId = uid('product');
    for (let i = 0; i < 64; i++) await store.jobs.create(job(productId, { id: `q${i}`, seq: i }));
    await store.sync();
    const before = store.commits;
    // 64 callers, each: read, replace, then sync (as the coordinator acknowledges).
    const outcomes = await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const cur = await store.jobs.read(productId, `q${i}`);
        const saved = await store.jobs.replace(
          { ...cur!, stage: 'assigned', holderFactoryId: `f${i}` },
          cur!._etag,
        );
        await store.sync();
        return saved._etag;
      }),
    );
    expect(new Set(outcomes).size).toBe(64);
    expect(store.commits).toBe(before + 1);
  });

  it('a batch reaching MAX_BATCH_WRITES is committed on the spot', async () => {
    const store = open(tempDb(), 'NORMAL');
    const jobId = uid('job');
    const before = store.commits;
    for (let i = 1; i <= MAX_BATCH_WRITES + 1; i++) {
      await store.events.append(makeEvent({ jobId, seq: i }));
    }
    expect(store.commits).toBe(before + 1);
    await store.sync();
    expect(store.commits).toBe(before + 2);
  });

  it('a failed COMMIT rejects every sync of its batch, undoes its writes, and the next write starts afresh', async () => {
    const store = open();
    const db = sqliteConnection(store);
    const productId = uid('product');
    const kept = await store.jobs.create(job(productId, { id: 'kept', seq: 1 }));
    await store.sync();
    // A deferred foreign key violated inside the batch makes its COMMIT fail.
    db.pragma('foreign_keys = ON');
    db.exec(`CREATE TABLE t_parent (id TEXT PRIMARY KEY);
      CREATE TABLE t_child (p TEXT REFERENCES t_parent (id) DEFERRABLE INITIALLY DEFERRED)`);
    const before = store.commits;

    const a = await store.jobs.create(job(productId, { id: 'a', seq: 0, priority: 'critical' }));
    const b = await store.jobs.replace({ ...kept, bodyMd: 'changed' }, kept._etag);
    db.prepare("INSERT INTO t_child VALUES ('missing')").run();
    const syncs = [store.sync(), store.sync()];
    for (const s of syncs) {
      const e = await expectCode(s, 'STORE_UNAVAILABLE');
      expect(e.detail).toContain('group commit failed');
    }
    expect(store.commits).toBe(before);
    expect(a._etag).not.toBe(b._etag);
    // The batch's writes are gone, in the tables and in the claim queue.
    expect(await store.jobs.read(productId, 'a')).toBeNull();
    expect((await store.jobs.read(productId, 'kept'))?._etag).toBe(kept._etag);
    const queue = await store.jobs.claimCandidates({
      productId,
      capabilities: [],
      now: T0,
      limit: 10,
    });
    expect(queue.map((j) => j.id)).toEqual(['kept']);
    // Until a new batch starts, sync keeps reporting the failure.
    await expectCode(store.sync(), 'STORE_UNAVAILABLE');

    db.pragma('foreign_keys = OFF');
    const c = await store.jobs.create(job(productId, { id: 'c', seq: 2 }));
    await store.sync();
    expect(store.commits).toBe(before + 1);
    expect((await store.jobs.read(productId, 'c'))?._etag).toBe(c._etag);
    const after = await store.jobs.claimCandidates({
      productId,
      capabilities: [],
      now: T0,
      limit: 10,
    });
    expect(after.map((j) => j.id)).toEqual(['kept', 'c']);
  });

  it('a write failing on its own does not end the batch; an I/O-class failure does', async () => {
    const store = open();
    const db = sqliteConnection(store);
    const productId = uid('product');
    await store.jobs.create(job(productId, { id: 'base' }));
    await store.sync();
    const pages = db.pragma('page_count', { simple: true }) as number;

    const first = await store.jobs.create(job(productId, { id: 'first' }));
    await expectCode(store.jobs.create(job(productId, { id: 'base' })), 'ALREADY_EXISTS');
    expect((await store.jobs.read(productId, 'first'))?._etag).toBe(first._etag);
    const pending = store.sync();
    // A full disk: the next write that needs a new page fails, and takes its batch with it.
    db.pragma(`max_page_count = ${pages}`);
    const big = job(productId, { id: 'big', bodyMd: 'x'.repeat(200_000) });
    await expectCode(store.jobs.create(big), 'STORE_UNAVAILABLE');
    await expectCode(pending, 'STORE_UNAVAILABLE');
    expect(await store.jobs.read(productId, 'first')).toBeNull();
    expect(await store.jobs.read(productId, 'big')).toBeNull();

    db.pragma('max_page_count = 1073741823');
    await store.jobs.create(big);
    await store.sync();
    expect((await store.jobs.read(productId, 'big'))?.bodyMd).toHaveLength(200_000);
  });

  it('close commits the open batch first', async () => {
    const path = tempDb();
    const store = openSqliteStore({ path });
    const doc = job(uid('product'));
    await store.jobs.create(doc);
    const synced = store.sync();
    await store.close();
    await synced;
    await expectCode(store.sync(), 'STORE_UNAVAILABLE');
    await expectCode(store.jobs.read(doc.productId, doc.id), 'STORE_UNAVAILABLE');
    await store.close(); // twice is harmless
    const again = open(path);
    expect((await again.jobs.read(doc.productId, doc.id))?.id).toBe(doc.id);
  });
});

// ---------------------------------------------------------------------------
// Durability
// ---------------------------------------------------------------------------

describe('sqlite store: durability', () => {
  it('after a reopen, every document and every query answer is there', async () => {
    const path = tempDb();
    const p = uid('product');
    const jobId = uid('job');
    const first = openSqliteStore({ path });
    await first.jobs.create(job(p, { id: 'base', seq: 1, stage: 'shipped' }));
    await first.jobs.create(job(p, { id: 'gpu', seq: 2, capabilities: ['gpu'] }));
    await first.jobs.create(job(p, { id: 'plain', seq: 3, priority: 'high' }));
    await first.jobs.create(
      job(p, { id: 'dep', seq: 4, stage: 'blocked', deps: ['base'], notBefore: at(5) }),
    );
    await first.jobs.create(
      job(p, {
        id: 'held',
        seq: 5,
        stage: 'building',
        holderFactoryId: 'f1',
        dueAt: at(-1),
        outbox: [{ kind: 'notifyDependents', jobId: 'held' }],
      }),
    );
    await first.runs.create(makeRun({ jobId, attempt: 2 }));
    await first.runs.create(makeRun({ jobId, attempt: 1 }));
    const lease = await first.leases.create(makeLease({ jobId }));
    await first.factories.create(makeFactory({ productId: p, id: 'f1', factoryId: 'f1' }));
    await first.profiles.create(makeProfile({ productId: p, id: 'prof' }));
    await first.events.append(makeEvent({ jobId, seq: 1 }));
    await first.events.append(makeEvent({ jobId, seq: 2 }));
    await first.artifacts.create(makeArtifact({ jobId, id: 'art' }));
    const snapshot = async (s: SqliteStore) => ({
      claim: (
        await s.jobs.claimCandidates({ productId: p, capabilities: ['gpu'], now: T0, limit: 10 })
      ).map((j) => j.id),
      claimPlain: (
        await s.jobs.claimCandidates({ productId: p, capabilities: [], now: T0, limit: 10 })
      ).map((j) => j.id),
      list: (await s.jobs.list({ productId: p, limit: 10 })).items,
      blocked: (await s.jobs.list({ productId: p, stage: 'blocked', limit: 10 })).items,
      dependents: (await s.jobs.dependents(p, 'base')).map((j) => j.id),
      due: (await s.jobs.due({ now: T0, limit: 100 })).filter((j) => j.productId === p),
      outbox: (await s.jobs.withOutbox({ limit: 100 })).filter((j) => j.productId === p),
      held: await s.jobs.countHeld(p, 'f1'),
      runs: (await s.runs.list(jobId, { limit: 10 })).items,
      lease: await s.leases.read(jobId, lease.id),
      factories: (await s.factories.list(p, { limit: 10 })).items,
      profiles: (await s.profiles.list(p, { limit: 10 })).items,
      events: await s.events.list(jobId, { limit: 10 }),
      artifacts: (await s.artifacts.list(jobId, { limit: 10 })).items,
    });
    const before = await snapshot(first);
    expect(before.claim).toEqual(['plain', 'gpu']);
    expect(before.claimPlain).toEqual(['plain']);
    expect(before.dependents).toEqual(['dep']);
    expect(before.held).toBe(1);
    await first.close();

    const second = open(path);
    expect(await snapshot(second)).toEqual(before);
    // Etags of the first run still guard writes; new etags never repeat old ones.
    const plain = (await second.jobs.read(p, 'plain'))!;
    const next = await second.jobs.replace({ ...plain, bodyMd: 'after reopen' }, plain._etag);
    expect(next._etag).not.toBe(plain._etag);
    await expectCode(second.jobs.replace(plain, plain._etag), 'PRECONDITION_FAILED');
  });

  it('a write whose sync resolved survives a crash of its process', async () => {
    const path = tempDb();
    const child = holder(['sync', path, 'survivor']);
    await child.line(/^synced|^error/);
    child.proc.kill('SIGKILL');
    await child.exited;
    const store = open(path);
    expect((await store.jobs.read('crash', 'survivor'))?.id).toBe('survivor');
  });

  it('a batch not yet committed when its process crashes is lost, and the file is sound', async () => {
    const path = tempDb();
    const first = openSqliteStore({ path });
    await first.jobs.create(job('crash', { id: 'before' }));
    await first.close();
    const child = holder(['nosync', path, 'lost']);
    await child.line(/^written|^error/);
    child.proc.kill('SIGKILL');
    await child.exited;
    const store = open(path);
    expect(await store.jobs.read('crash', 'lost')).toBeNull();
    expect((await store.jobs.read('crash', 'before'))?.id).toBe('before');
    expect(sqliteConnection(store).pragma('integrity_check', { simple: true })).toBe('ok');
  });
});

// ---------------------------------------------------------------------------
// One process at a time
// ---------------------------------------------------------------------------

describe('sqlite store: one process at a time', () => {
  it('a database held by another process is refused with STORE_UNAVAILABLE', async () => {
    const path = tempDb();
    const child = holder(['hold', path]);
    await child.line(/^ready|^error/);
    const e = await expectCode(() => openSqliteStore({ path }), 'STORE_UNAVAILABLE');
    expect(e.detail).toContain(IN_USE_DETAIL);
    child.proc.stdin!.end(); // the holder closes its store and exits
    expect(await child.exited).toBe(0);
    const store = open(path);
    await store.ping();
  });

  it('a second open in the same process is refused too; the first keeps working', async () => {
    const path = tempDb();
    const first = openSqliteStore({ path });
    const e = await expectCode(() => openSqliteStore({ path }), 'STORE_UNAVAILABLE');
    expect(e.detail).toContain(IN_USE_DETAIL);
    const doc = job(uid('product'));
    await first.jobs.create(doc);
    await first.sync();
    await first.close();
    const second = open(path);
    expect((await second.jobs.read(doc.productId, doc.id))?.id).toBe(doc.id);
  });

  it('a process killed while holding the database does not keep it locked', async () => {
    const path = tempDb();
    const child = holder(['hold', path]);
    await child.line(/^ready|^error/);
    child.proc.kill('SIGKILL');
    await child.exited;
    const store = open(path);
    await store.ping();
  });
});
