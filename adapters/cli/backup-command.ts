/**
 * `fleet backup FILE`, client side: downloads an online backup of a running server's
 * database (`GET /fleet/admin/backup`, see `adapters/http/backup-routes.ts`) and leaves a
 * checked copy at FILE.
 *
 * FILE appears only once the copy is whole and sound: the download goes to a hidden
 * `.<name>.<random>.partial` file beside FILE (mode 0600: it holds every product's
 * jobs), whose length must equal `Content-Length`, whose SHA-256 must equal the
 * server's `Repr-Digest`, and which must pass SQLite's `PRAGMA integrity_check`; then it
 * is flushed to the disk and linked to FILE. An existing FILE is never replaced unless
 * `overwrite` is set. Any failure removes the partial file and exits 1.
 *
 * To restore: stop Fleet, put the file where `FLEET_DB` points (or point `FLEET_DB` at
 * it) and start Fleet.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { basename, dirname, join, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import { isFleetError } from '../../runtime/index.js';
import { fsyncPath, placeNew } from '../store/sqlite/index.js';

/** What `fleet backup` needs. */
export interface BackupCommandOptions {
  /** The server's base URL (`FLEET_URL`), e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** An admin token marked operator (`FLEET_TOKEN`). */
  token: string;
  /** Where to leave the backup (on this machine). */
  file: string;
  /** Replace FILE if it exists. @defaultValue false */
  overwrite?: boolean;
}

/** Exit statuses, as the other commands use them. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

const MIB = 1024 * 1024;

/** A progress line per this share of the download (or per 64 MiB without a length). */
const PROGRESS_STEP = 0.1;

const mib = (bytes: number): string => `${(bytes / MIB).toFixed(1)} MiB`;

/** Thrown inside the command for a failure to report as is (exit 1). */
class BackupFailure extends Error {}

/** What a problem document says, for a person. */
function explain(status: number, text: string): string {
  let problem: { code?: unknown; detail?: unknown; retryAfterSeconds?: unknown } = {};
  try {
    problem = JSON.parse(text) as typeof problem;
  } catch {
    // Not a problem document (a proxy's page): the status says enough.
  }
  const code = typeof problem.code === 'string' ? ` ${problem.code}` : '';
  const detail = typeof problem.detail === 'string' ? `: ${problem.detail}` : '';
  const hint: Record<number, string> = {
    401: ' (check FLEET_TOKEN)',
    403: ' (a backup needs an admin token whose grant has "operator": true)',
    501: ' (only the SQLite store has an online backup; back Cosmos DB up with its own backups)',
  };
  return `the server answered ${status}${code}${detail}${hint[status] ?? ''}`;
}

/**
 * GETs `url`; resolves with the response once its headers are in. No timeout: the
 * server sends nothing until its copy is made, which takes as long as the database is
 * large (`fetch` would give up after 5 minutes).
 */
function get(url: URL, headers: Record<string, string>): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    send(url, { headers }, resolve).on('error', reject).end();
  });
}

/** The body of a refusal (a problem document), at most 64 KiB of it. */
async function text(response: IncomingMessage): Promise<string> {
  let body = '';
  response.setEncoding('utf8');
  for await (const chunk of response) {
    if (body.length < 65_536) body += String(chunk);
  }
  return body.slice(0, 65_536);
}

/** `sha-256=:<base64>:` of a `Repr-Digest` header, or null. */
function expectedDigest(header: string | null): string | null {
  const m = header === null ? null : /(?:^|,)\s*sha-256=:([A-Za-z0-9+/=]+):/.exec(header);
  return m ? m[1]! : null;
}

/** Opens the copy read-only: `integrity_check`, and how many jobs it holds. */
function check(file: string): { jobs: number } {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    const result = db.pragma('integrity_check', { simple: true });
    if (result !== 'ok') throw new BackupFailure(`integrity_check failed: ${String(result)}`);
    const hasJobs = db
      .prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'jobs'")
      .pluck()
      .get();
    if (hasJobs !== 1) throw new BackupFailure('the download is not a Fleet database');
    return { jobs: db.prepare('SELECT count(*) FROM jobs').pluck().get() as number };
  } catch (e) {
    if (e instanceof BackupFailure) throw e;
    throw new BackupFailure(`the download is not an SQLite database (${(e as Error).message})`);
  } finally {
    db?.close();
  }
}

/**
 * Runs `fleet backup` (see the file header): progress and the result go to `out`,
 * failures to `err`. Resolves with the exit status: 0 done, 1 failed (nothing left at
 * FILE or beside it), 2 bad options.
 */
export async function runBackupCommand(
  options: BackupCommandOptions,
  out: (line: string) => void,
  err: (line: string) => void = out,
): Promise<number> {
  const started = performance.now();
  if (!URL.canParse(options.url) || !/^https?:$/.test(new URL(options.url).protocol)) {
    err('fleet backup: FLEET_URL must be the server’s http(s) URL, e.g. http://127.0.0.1:8080');
    return EXIT.usage;
  }
  if (options.token === '') {
    err('fleet backup: FLEET_TOKEN must be an admin token whose grant has "operator": true');
    return EXIT.usage;
  }
  if (options.file === '') {
    err('fleet backup: name the file to write: fleet backup FILE');
    return EXIT.usage;
  }
  const target = resolve(options.file);
  const folder = dirname(target);
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    err(`fleet backup: the folder ${folder} does not exist`);
    return EXIT.failed;
  }
  if (existsSync(target) && options.overwrite !== true) {
    err(`fleet backup: ${target} exists; choose another name (or overwrite it on purpose)`);
    return EXIT.failed;
  }
  const partial = join(folder, `.${basename(target)}.${randomBytes(6).toString('hex')}.partial`);
  const endpoint = new URL(
    'fleet/admin/backup',
    options.url.endsWith('/') ? options.url : `${options.url}/`,
  );
  try {
    out(`fleet backup: the server is copying its database (online; large ones take a while)...`);
    let response: IncomingMessage;
    try {
      response = await get(endpoint, {
        authorization: `Bearer ${options.token}`,
        accept: 'application/vnd.sqlite3',
      });
    } catch (e) {
      throw new BackupFailure(`cannot reach ${endpoint.origin}: ${(e as Error).message}`);
    }
    const header = (name: string): string | null => {
      const v = response.headers[name];
      return typeof v === 'string' ? v : null;
    };
    if (response.statusCode !== 200) {
      throw new BackupFailure(explain(response.statusCode ?? 0, await text(response)));
    }
    const length = Number(header('content-length') ?? Number.NaN);
    const digest = expectedDigest(header('repr-digest'));
    const hash = createHash('sha256');
    let received = 0;
    let reported = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        received += chunk.length;
        hash.update(chunk);
        const share = Number.isFinite(length) && length > 0 ? received / length : null;
        if (share !== null ? share - reported >= PROGRESS_STEP : received - reported >= 64 * MIB) {
          reported = share ?? received;
          out(
            share !== null
              ? `fleet backup: ${Math.floor(share * 100)}% (${mib(received)} of ${mib(length)})`
              : `fleet backup: ${mib(received)}`,
          );
        }
        done(null, chunk);
      },
    });
    const sink = createWriteStream(partial, { flags: 'wx', mode: 0o600 });
    try {
      await pipeline(response, meter, sink);
    } catch (e) {
      // A stream destroyed before it opened still creates its file once it does: wait
      // for it to close, so the partial file removed below is really gone.
      if (!sink.closed) await new Promise<void>((done) => sink.once('close', () => done()));
      throw new BackupFailure(
        `the download broke off after ${mib(received)}: ${(e as Error).message}`,
      );
    }
    if (Number.isFinite(length) && received !== length) {
      throw new BackupFailure(`the download is incomplete: ${received} of ${length} bytes`);
    }
    if (digest !== null && hash.digest('base64') !== digest) {
      throw new BackupFailure('the download does not match the server’s SHA-256 (Repr-Digest)');
    }
    fsyncPath(partial);
    const { jobs } = check(partial);
    if (options.overwrite === true) {
      renameSync(partial, target);
    } else {
      try {
        placeNew(partial, target);
      } catch (e) {
        if (isFleetError(e, 'ALREADY_EXISTS')) {
          throw new BackupFailure(`${target} appeared meanwhile; it was not replaced`);
        }
        throw e;
      }
    }
    fsyncPath(folder);
    const pages = header('fleet-backup-pages');
    out(
      `fleet backup: wrote ${target}: ${mib(received)}${pages ? `, ${pages} pages` : ''}, ${jobs} jobs, integrity_check ok${digest ? ', SHA-256 verified' : ''} (${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );
    return EXIT.ok;
  } catch (e) {
    rmSync(partial, { force: true });
    const message = e instanceof BackupFailure ? e.message : (e as Error).message;
    err(`fleet backup: ${message}; nothing was written to ${target}`);
    return EXIT.failed;
  }
}
