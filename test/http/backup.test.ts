/**
 * Online backup over HTTP (`GET /fleet/admin/backup` and the client side of
 * `fleet backup FILE`, `adapters/cli/backup-command.ts`), against a standalone server in
 * this process on a temp SQLite file, listening on 127.0.0.1.
 *
 * Under load: submitters, and factories claiming and moving jobs, keep running while
 * the backup is taken. The copy must open, pass `integrity_check` and the store
 * invariants, and hold every job (at least in the stage) acknowledged before the
 * backup began; restoring is starting Fleet on the copy, which then serves those jobs.
 * Waits are on events and responses, never on sleeps.
 */
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, runBackupCommand } from '../../adapters/cli/backup-command.js';
import { loadConfig } from '../../adapters/http/config.js';
import { buildServer, type FleetServer, listen } from '../../adapters/http/server.js';
import { openSqliteStore, sqliteConnection } from '../../adapters/store/sqlite/index.js';
import type { DocumentStore, Stage } from '../../runtime/index.js';
import { allJobs, storeViolations } from '../support/invariants.js';
import { expectProblem } from './support.js';

const TOKENS = [
  { token: 'ops-token', productId: 'acme', roles: ['admin'], operator: true, subject: 'ops' },
  { token: 'admin-token', productId: 'acme', roles: ['admin'], subject: 'acme-admin' },
  { token: 'submit-token', productId: 'acme', roles: ['submitter'], subject: 'ci' },
  { token: 'factory-token', productId: 'acme', roles: ['factory'], subject: 'factories' },
];

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'fleet-http-backup-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const servers: FleetServer[] = [];
const others: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const s of others.splice(0)) s.close();
});

async function start(env: Record<string, string>): Promise<FleetServer> {
  const server = await buildServer(
    loadConfig({ FLEET_TOKENS: JSON.stringify(TOKENS), PORT: '0', ...env }),
    { logger: false },
  );
  servers.push(server);
  return server;
}

/** What the load reads of answers: a job, or a claim. */
interface JobSeen {
  id: string;
  idempotencyKey: string;
  stage: Stage;
}
type Answer = JobSeen & { job: JobSeen; lease: { leaseEpoch: number } };

const RANK: Record<Stage, number> = {
  blocked: 0,
  queued: 0,
  assigned: 1,
  building: 2,
  review: 3,
  testing: 4,
  shipped: 5,
  failed: 1,
  dead_letter: 1,
};

/** Replaces `store.backup` with one that reports while it copies (for overlap checks) and may wait first. */
function watchBackups(store: DocumentStore, before?: () => Promise<void>) {
  const original = store.backup!.bind(store);
  const state = { copying: false, runs: 0 };
  store.backup = async (file, options) => {
    state.runs++;
    await before?.();
    state.copying = true;
    try {
      return await original(file, options);
    } finally {
      state.copying = false;
    }
  };
  return state;
}

describe('online backup over HTTP', () => {
  it('under a stream of submits, claims and moves: the copy is sound, holds everything acknowledged before, and Fleet restored on it serves it', async () => {
    const folder = mkdtempSync(join(root, 'load-'));
    const server = await start({ FLEET_DB: join(folder, 'fleet.db') });
    const url = await listen(server);
    // A database of many backup steps (about 3,000 pages of 4 KiB).
    const body = 'x'.repeat(4000);
    // What was acknowledged, and whether the backup had begun then.
    const acked = new Map<string, { key: string; stage: Stage }>();
    for (let i = 0; i < 30; i++) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, (_, j) =>
          server.coordinator.submit('acme', {
            idempotencyKey: `seed-${i}-${j}`,
            bodyMd: body,
          }),
        ),
      );
      for (const r of batch) {
        if (!r.ok) throw r.error;
        acked.set(r.value.job.id, { key: r.value.job.idempotencyKey, stage: r.value.job.stage });
      }
    }
    const watch = watchBackups(server.store);

    let began = false;
    let duringCopy = 0;
    let stop = false;
    const call = async (token: string, method: string, path: string, json?: unknown) => {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(json === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(json === undefined ? {} : { body: JSON.stringify(json) }),
      });
      return {
        status: res.status,
        body: (res.status === 204 ? null : await res.json()) as Answer,
      };
    };
    const record = (job: JobSeen, sentWhileCopying: boolean) => {
      if (sentWhileCopying && watch.copying) duringCopy++;
      if (!began) acked.set(job.id, { key: job.idempotencyKey, stage: job.stage });
    };
    const submitter = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const copying = watch.copying;
        const r = await call('submit-token', 'POST', '/fleet/jobs', {
          idempotencyKey: `load-${w}-${i}`,
          bodyMd: `job ${w}/${i}`,
        });
        expect(r.status).toBe(201);
        record(r.body, copying);
      }
    };
    const factory = async (w: number) => {
      while (!stop) {
        const claimed = await call('factory-token', 'POST', '/fleet/claim', { factoryId: `f${w}` });
        expect(claimed.status).toBe(200);
        const { job, lease } = claimed.body;
        record(job, false);
        for (const to of ['building', 'review', 'testing', 'shipped']) {
          const copying = watch.copying;
          const moved = await call('factory-token', 'PATCH', `/fleet/jobs/${job.id}`, {
            factoryId: `f${w}`,
            leaseEpoch: lease.leaseEpoch,
            to,
          });
          expect(moved.status).toBe(200);
          record(moved.body, copying);
        }
      }
    };
    const load = [0, 1, 2, 3].map(submitter).concat([0, 1, 2, 3].map(factory));
    // Let the load get going: some of its work is acknowledged before the backup.
    while (acked.size < 1500 + 40) {
      await Promise.race([Promise.all(load), new Promise((r) => setImmediate(r))]);
    }
    const ackedBefore = new Map(acked);
    began = true;

    const file = join(folder, 'backup.db');
    const lines: string[] = [];
    const code = await runBackupCommand({ url, token: 'ops-token', file }, (l) => lines.push(l));
    stop = true;
    await Promise.all(load);
    expect(code, lines.join('\n')).toBe(EXIT.ok);
    expect(lines.at(-1)).toMatch(
      /wrote .*backup\.db: .* jobs, integrity_check ok, SHA-256 verified/,
    );
    expect(watch.runs).toBe(1);
    // The load went on while the database was being copied.
    expect(duringCopy).toBeGreaterThan(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // The server deleted its copy once sent; the client left no partial file.
    expect(readdirSync(folder).filter((f) => f.startsWith('.'))).toEqual([]);
    await server.close();

    const copy = openSqliteStore({ path: file });
    try {
      expect(sqliteConnection(copy).pragma('integrity_check', { simple: true })).toBe('ok');
      expect(await storeViolations(copy)).toEqual([]);
      const jobs = new Map((await allJobs(copy)).map((j) => [j.id, j]));
      for (const [id, seen] of ackedBefore) {
        const job = jobs.get(id);
        expect(job?.idempotencyKey, id).toBe(seen.key);
        expect(RANK[job!.stage], `${id}: ${job!.stage} vs ${seen.stage}`).toBeGreaterThanOrEqual(
          RANK[seen.stage],
        );
      }
    } finally {
      await copy.close();
    }

    // Restore: Fleet started on the copy serves the jobs.
    const restored = await start({ FLEET_DB: file });
    const ids = [...ackedBefore.keys()];
    for (const id of [ids[0]!, ids[ids.length - 1]!, ids[Math.floor(ids.length / 2)]!]) {
      const res = await restored.app.inject({
        method: 'GET',
        url: `/fleet/jobs/${id}`,
        headers: { authorization: 'Bearer admin-token' },
      });
      expect(res.statusCode).toBe(200);
      expect(res.json().idempotencyKey).toBe(ackedBefore.get(id)!.key);
    }
    const claim = await restored.app.inject({
      method: 'POST',
      url: '/fleet/claim',
      headers: { authorization: 'Bearer factory-token' },
      payload: { factoryId: 'after-restore' },
    });
    expect(claim.statusCode).toBe(200);
  });

  it('needs admin credentials marked operator: 401 without, 403 for a submitter and for a product admin', async () => {
    const folder = mkdtempSync(join(root, 'auth-'));
    const server = await start({ FLEET_DB: join(folder, 'fleet.db') });
    const get = (token?: string) =>
      server.app.inject({
        method: 'GET',
        url: '/fleet/admin/backup',
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      });
    expectProblem(await get(), 'UNAUTHENTICATED');
    expectProblem(await get('submit-token'), 'FORBIDDEN');
    const admin = expectProblem(await get('admin-token'), 'FORBIDDEN');
    expect(admin.detail).toContain('operator');
    const ok = await get('ops-token');
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['content-type']).toBe('application/vnd.sqlite3');
    expect(Number(ok.headers['content-length'])).toBe(ok.rawPayload.length);
    expect(ok.rawPayload.subarray(0, 16).toString('latin1')).toBe('SQLite format 3\u0000');
    // No HEAD: it would copy the whole database to send headers.
    const head = await server.app.inject({
      method: 'HEAD',
      url: '/fleet/admin/backup',
      headers: { authorization: 'Bearer ops-token' },
    });
    expect(head.statusCode).toBe(404);
  });

  it('a store without an online backup answers 501 NOT_IMPLEMENTED', async () => {
    const server = await start({ FLEET_STORE: 'memory' });
    const res = await server.app.inject({
      method: 'GET',
      url: '/fleet/admin/backup',
      headers: { authorization: 'Bearer ops-token' },
    });
    expectProblem(res, 'NOT_IMPLEMENTED');
    // The client says what to do instead, and writes nothing.
    const url = await listen(server);
    const file = join(root, 'memory.db');
    const errors: string[] = [];
    expect(
      await runBackupCommand(
        { url, token: 'ops-token', file },
        () => {},
        (l) => errors.push(l),
      ),
    ).toBe(EXIT.failed);
    expect(errors.join('\n')).toMatch(/501 NOT_IMPLEMENTED.*only the SQLite store/);
    expect(() => statSync(file)).toThrow();
  });

  it('one backup at a time: another meanwhile is 429 RATE_LIMITED with Retry-After', async () => {
    const folder = mkdtempSync(join(root, 'busy-'));
    const server = await start({ FLEET_DB: join(folder, 'fleet.db') });
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let entered!: () => void;
    const inBackup = new Promise<void>((r) => {
      entered = r;
    });
    watchBackups(server.store, async () => {
      entered();
      await held;
    });
    const get = () =>
      server.app.inject({
        method: 'GET',
        url: '/fleet/admin/backup',
        headers: { authorization: 'Bearer ops-token' },
      });
    const first = get();
    await inBackup;
    const second = await get();
    expectProblem(second, 'RATE_LIMITED');
    expect(Number(second.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    release();
    expect((await first).statusCode).toBe(200);
    expect((await get()).statusCode).toBe(200);
  });

  it('a copy that takes longer than the idle connection timeout is still sent', async () => {
    const folder = mkdtempSync(join(root, 'idle-'));
    const server = await buildServer(
      {
        ...loadConfig({
          FLEET_TOKENS: JSON.stringify(TOKENS),
          PORT: '0',
          FLEET_DB: join(folder, 'fleet.db'),
        }),
        connectionTimeoutMs: 100,
      },
      { logger: false },
    );
    servers.push(server);
    const url = await listen(server);
    // The copy starts only after three idle timeouts' worth of silence on the socket
    // (timers fire in order of their deadlines: the socket's would fire first).
    watchBackups(server.store, () => new Promise((r) => setTimeout(r, 300)));
    const lines: string[] = [];
    const file = join(folder, 'slow.db');
    expect(await runBackupCommand({ url, token: 'ops-token', file }, (l) => lines.push(l))).toBe(
      EXIT.ok,
    );
    expect(statSync(file).size).toBeGreaterThan(0);
  });

  it('closing the server stops a backup under way; nothing is left in the backup folder', async () => {
    const folder = mkdtempSync(join(root, 'close-'));
    const backups = join(folder, 'backups');
    const server = await start({ FLEET_DB: join(folder, 'fleet.db'), FLEET_BACKUP_DIR: backups });
    for (let i = 0; i < 20; i++) {
      expect(
        (
          await server.coordinator.submit('acme', {
            idempotencyKey: `k${i}`,
            bodyMd: 'x'.repeat(50_000),
          })
        ).ok,
      ).toBe(true);
    }
    let steps = 0;
    let closing: Promise<void> | undefined;
    const original = server.store.backup!.bind(server.store);
    server.store.backup = (file, options) =>
      original(file, {
        ...options,
        onProgress: (p) => {
          options?.onProgress?.(p);
          if (++steps === 1) closing = server.close();
        },
      });
    const res = await server.app.inject({
      method: 'GET',
      url: '/fleet/admin/backup',
      headers: { authorization: 'Bearer ops-token' },
    });
    await closing;
    expect(steps).toBeGreaterThan(0);
    expect(res.statusCode).toBe(503);
    expect(readdirSync(backups)).toEqual([]);
  });

  it('removes copies a dead process left in the backup folder, and only those', async () => {
    const folder = mkdtempSync(join(root, 'leftovers-'));
    const backups = join(folder, 'backups');
    const server = await start({ FLEET_DB: join(folder, 'fleet.db'), FLEET_BACKUP_DIR: backups });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(backups);
    // A pid above Linux's pid_max is never alive; the parent of this process is.
    const dead = join(backups, '.fleet-backup-4194305-0a0b.db');
    const partial = join(backups, '..fleet-backup-4194305-0a0b.db.cafe.partial');
    const living = join(backups, `.fleet-backup-${process.ppid}-0c0d.db`);
    const unrelated = join(backups, 'notes.txt');
    for (const f of [dead, partial, living, unrelated]) writeFileSync(f, 'x');
    const res = await server.app.inject({
      method: 'GET',
      url: '/fleet/admin/backup',
      headers: { authorization: 'Bearer ops-token' },
    });
    expect(res.statusCode).toBe(200);
    expect(readdirSync(backups).sort()).toEqual(
      [`.fleet-backup-${process.ppid}-0c0d.db`, 'notes.txt'].sort(),
    );
  });
});

describe('fleet backup (client side)', () => {
  /** A server answering every request with `answer`. */
  async function fake(answer: (res: import('node:http').ServerResponse) => void): Promise<string> {
    const s = createServer((_req, res) => answer(res));
    others.push(s);
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    const { port } = s.address() as { port: number };
    return `http://127.0.0.1:${port}`;
  }

  it('refuses a FILE that exists (untouched), a bad URL or token; says 401 clearly', async () => {
    const folder = mkdtempSync(join(root, 'client-'));
    const server = await start({ FLEET_DB: join(folder, 'fleet.db') });
    const url = await listen(server);
    const taken = join(folder, 'taken.db');
    writeFileSync(taken, 'mine');
    const lines: string[] = [];
    const say = (l: string) => lines.push(l);
    expect(await runBackupCommand({ url, token: 'ops-token', file: taken }, say)).toBe(EXIT.failed);
    expect(readFileSync(taken, 'utf8')).toBe('mine');
    expect(await runBackupCommand({ url: 'ftp://x', token: 't', file: taken }, say)).toBe(
      EXIT.usage,
    );
    expect(await runBackupCommand({ url, token: '', file: taken }, say)).toBe(EXIT.usage);
    const file = join(folder, 'b.db');
    expect(await runBackupCommand({ url, token: 'wrong', file }, say)).toBe(EXIT.failed);
    expect(lines.join('\n')).toMatch(/401 UNAUTHENTICATED.*check FLEET_TOKEN/);
    // With overwrite, an existing file is replaced by a sound backup.
    expect(
      await runBackupCommand({ url, token: 'ops-token', file: taken, overwrite: true }, say),
    ).toBe(EXIT.ok);
    expect(readFileSync(taken).subarray(0, 15).toString('latin1')).toBe('SQLite format 3');
    expect(readdirSync(folder).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('a download that is cut short, does not match its digest, or is not a database leaves nothing', async () => {
    const folder = mkdtempSync(join(root, 'bad-'));
    const file = join(folder, 'b.db');
    const cases: Array<[string, (res: import('node:http').ServerResponse) => void, RegExp]> = [
      [
        'short',
        (res) => {
          res.writeHead(200, {
            'content-length': '100',
            'content-type': 'application/vnd.sqlite3',
          });
          res.write('x'.repeat(10), () => res.destroy());
        },
        /broke off|incomplete/,
      ],
      [
        'digest',
        (res) => {
          res.writeHead(200, { 'repr-digest': `sha-256=:${Buffer.alloc(32).toString('base64')}:` });
          res.end('not the data');
        },
        /SHA-256/,
      ],
      [
        'not sqlite',
        (res) => {
          res.writeHead(200);
          res.end('hello, this is not a database at all, not even close to one');
        },
        /not an SQLite database|integrity_check|not a Fleet database/,
      ],
    ];
    for (const [name, answer, message] of cases) {
      const url = await fake(answer);
      const errors: string[] = [];
      const code = await runBackupCommand(
        { url, token: 't', file },
        () => {},
        (l) => errors.push(l),
      );
      expect(code, name).toBe(EXIT.failed);
      expect(errors.join('\n'), name).toMatch(message);
      expect(readdirSync(folder), name).toEqual([]);
    }
  });
});
