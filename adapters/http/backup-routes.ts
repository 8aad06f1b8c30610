/**
 * `GET /fleet/admin/backup`: an online backup of the whole database, sent to the caller.
 *
 * Decision: the server streams the copy to the client (`fleet backup FILE` writes FILE
 * where it runs) rather than writing a file at a path the client names. A client-named
 * path on the server host would need its own allow-list and overwrite rules, and an
 * operator backing up from another machine would still have to fetch the file; a
 * download needs neither, and the client checks what it got (length, SHA-256,
 * `integrity_check`) before it gives the file its name.
 *
 * How: the store writes a consistent copy (`store.backup`, online: the server keeps
 * serving, see `adapters/store/sqlite/online-backup.ts`) into a hidden file in the
 * backup folder (`backupDir`, `FLEET_BACKUP_DIR`; only names the server makes, mode
 * 0600), then sends it with `Content-Length` and `Repr-Digest: sha-256=:...:` (RFC 9530),
 * and deletes it once the response ends or the client leaves. One backup at a time per
 * process; another meanwhile is `429 RATE_LIMITED` with `Retry-After`. Copies left by a
 * process that died mid-backup are deleted by the next backup.
 *
 * Who: the copy holds every product's jobs, so an admin of one product may not take
 * it: the caller needs the `admin` role and `operator: true` (a grant's `"operator":
 * true` on the standalone server; the development token has it). A store without an
 * online backup (memory, Cosmos DB) answers `501 NOT_IMPLEMENTED`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { FleetError } from '../../runtime/index.js';
import { authOf, guard } from './auth.js';
import { PROBLEM_MEDIA_TYPE, toProblem } from './problem.js';
import { AUTH_CODES, type FleetApp, problems, type RouteContext } from './route-context.js';

/** The media type of a backup: an SQLite database file (IANA `application/vnd.sqlite3`). */
export const BACKUP_MEDIA_TYPE = 'application/vnd.sqlite3';

/** Seconds a caller should wait when another backup is running. */
const BUSY_RETRY_SECONDS = 10;

/** Log a progress line at most this often, ms. */
const PROGRESS_LOG_MS = 5000;

/** The server's hidden copies: `.fleet-backup-<pid>-<random>.db`, and the store's partial files of them. */
const COPY_NAME = /^\.{1,2}fleet-backup-(\d+)-[0-9a-f]+\.db/;

/** What the plugin shares with the backup route. */
export interface BackupState {
  /** Folder of the temporary copies. */
  readonly dir: string;
  /** Backups under way (copying or sending): aborted when the server closes. */
  readonly running: Set<AbortController>;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
};

/**
 * Deletes copies a process left when it died mid-backup: those of a process that is
 * gone, and this process's own (none is running when a backup starts: one at a time).
 */
function removeLeftovers(dir: string): void {
  for (const name of readdirSync(dir)) {
    const m = COPY_NAME.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || !alive(pid)) rmSync(join(dir, name), { force: true });
  }
}

/** The file's SHA-256, read off the event loop. */
function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('base64')));
  });
}

/**
 * Registers `GET /admin/backup` (under the plugin's `/fleet` scope; see the file header).
 * Backups under way are listed in `state.running`, which the plugin aborts on close.
 */
export function registerBackupRoutes(app: FleetApp, ctx: RouteContext, state: BackupState): void {
  const store = ctx.coordinator.store;
  let busy = false;

  app.get(
    '/admin/backup',
    {
      onRequest: guard(ctx.authenticate, ['admin']),
      // A HEAD would take a whole backup to send its headers.
      exposeHeadRoute: false,
      // A download lasts as long as the database is large: not a request latency.
      config: { fleetStream: true },
      schema: {
        operationId: 'backup',
        tags: ['admin'],
        summary: 'Download a consistent online backup of the whole database',
        description: [
          'Role **admin**, and credentials marked `operator` (a backup holds **every product’s** jobs): other admins → `403 FORBIDDEN`.',
          'The server copies its database while it keeps serving (SQLite’s online backup: every change committed before the request is in the copy, and the copy is one state the database was really in), then sends the copy as an SQLite database file with `Content-Length` and `Repr-Digest: sha-256=:<base64>:`; check both before trusting the file (`fleet backup FILE` does, and runs `PRAGMA integrity_check`). To restore, start Fleet on the file (`FLEET_DB=<file>`).',
          'The copy is written to the server’s backup folder first (`FLEET_BACKUP_DIR`, default the database’s folder; room for one copy of the database is needed) and deleted once sent. One backup at a time: another meanwhile → `429 RATE_LIMITED` with `Retry-After`. A store without an online backup (memory, Cosmos DB: use Cosmos DB’s own backups) → `501 NOT_IMPLEMENTED`.',
        ].join('\n'),
        response: {
          200: {
            description: 'The database file.',
            content: { [BACKUP_MEDIA_TYPE]: { schema: z.string().describe('binary') } },
          },
          ...problems(...AUTH_CODES, 'RATE_LIMITED', 'NOT_IMPLEMENTED'),
        },
      },
    },
    async (request, typed) => {
      // The response is a file and, when stopped, a problem: not the schema's JSON.
      const reply = typed as unknown as FastifyReply;
      const auth = authOf(request);
      if (auth.operator !== true) {
        throw new FleetError(
          'FORBIDDEN',
          'a backup holds every product’s jobs: it needs admin credentials marked operator (a token grant with "operator": true)',
        );
      }
      if (store.backup === undefined) {
        throw new FleetError('NOT_IMPLEMENTED', `the ${store.kind} store has no online backup`);
      }
      if (busy) {
        throw new FleetError(
          'RATE_LIMITED',
          `a backup is already running; one at a time (retry after ${BUSY_RETRY_SECONDS} s)`,
          { extra: { limit: 1, retryAfterSeconds: BUSY_RETRY_SECONDS } },
        );
      }
      busy = true;
      const started = performance.now();
      const controller = new AbortController();
      state.running.add(controller);
      const copy = join(
        state.dir,
        `.fleet-backup-${process.pid}-${randomBytes(8).toString('hex')}.db`,
      );
      const finish = (): void => {
        state.running.delete(controller);
        rmSync(copy, { force: true });
        busy = false;
      };
      const onClose = (): void => {
        if (!reply.raw.writableEnded) controller.abort(new Error('the client left'));
        finish();
      };
      reply.raw.on('close', onClose);
      controller.signal.addEventListener('abort', () => {
        // Mid-download: end the response, so the client sees an incomplete file.
        if (reply.raw.headersSent) reply.raw.destroy();
      });
      // The copy may take longer than the idle timeout while nothing is sent; the
      // response ends with the connection.
      const socket = request.raw.socket as { setTimeout?: (ms: number) => void } | undefined;
      socket?.setTimeout?.(0);
      reply.header('connection', 'close');

      let lastLog = started;
      let result: { pages: number; bytes: number };
      let digest: string;
      try {
        mkdirSync(state.dir, { recursive: true, mode: 0o700 });
        removeLeftovers(state.dir);
        request.log.info({ dir: state.dir }, 'backup: copying the database');
        result = await store.backup(copy, {
          signal: controller.signal,
          onProgress: ({ totalPages, remainingPages }) => {
            const now = performance.now();
            if (now - lastLog < PROGRESS_LOG_MS) return;
            lastLog = now;
            request.log.info({ totalPages, remainingPages }, 'backup: copying');
          },
        });
        digest = await sha256(copy);
      } catch (e) {
        if (controller.signal.aborted) {
          // The client left, or the server is closing: nobody is waiting for an answer.
          request.log.info({ reason: String(controller.signal.reason) }, 'backup: stopped');
          const { problem, headers } = toProblem(
            new FleetError('STORE_UNAVAILABLE', 'the backup was stopped'),
          );
          return reply.code(problem.status).type(PROBLEM_MEDIA_TYPE).headers(headers).send(problem);
        }
        if (e instanceof FleetError) throw e;
        // The backup folder could not be made or read (its permissions, a full disk).
        throw new FleetError('STORE_UNAVAILABLE', 'the backup could not be written', {
          cause: e,
        });
      }
      request.log.info(
        { pages: result.pages, bytes: result.bytes, ms: Math.round(performance.now() - started) },
        'backup: copied; sending',
      );
      const stamp = new Date(ctx.coordinator.clock.now()).toISOString().replace(/[:.]/g, '-');
      return reply
        .header('content-type', BACKUP_MEDIA_TYPE)
        .header('content-length', String(result.bytes))
        .header('content-disposition', `attachment; filename="fleet-backup-${stamp}.db"`)
        .header('repr-digest', `sha-256=:${digest}:`)
        .header('fleet-backup-pages', String(result.pages))
        .header('cache-control', 'no-store')
        .send(createReadStream(copy));
    },
  );
}
