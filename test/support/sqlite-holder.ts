/**
 * A second process for the SQLite store's tests (test/unit/sqlite-store.test.ts):
 *
 *   node --import tsx test/support/sqlite-holder.ts <mode> [path] [jobId]
 *
 * - `hold <path>`: opens the store, prints `ready`, keeps it open until stdin closes;
 * - `sync <path> <jobId>`: creates the job, awaits `sync()`, prints `synced`, then waits
 *   to be killed (the test sends SIGKILL: a crash after the commit);
 * - `nosync <path> <jobId>`: creates the job, prints `written`, then blocks its event
 *   loop for good, so the batch is never committed (a crash before the commit);
 * - `default`: opens the store with no path (the current folder decides), prints its
 *   path, closes it.
 * Failures print `error <code> <detail>` and exit with status 1.
 */
import { openSqliteStore } from '../../adapters/store/sqlite/index.js';
import { isFleetError } from '../../runtime/errors.js';
import { makeJob } from './docs.js';

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function main(): Promise<void> {
  const [mode, path, jobId] = process.argv.slice(2);
  switch (mode) {
    case 'hold': {
      const store = openSqliteStore({ path: path! });
      say('ready');
      process.stdin.resume();
      await new Promise((done) => process.stdin.on('end', done));
      await store.close();
      return;
    }
    case 'sync':
    case 'nosync': {
      const store = openSqliteStore({ path: path! });
      await store.jobs.create(makeJob({ productId: 'crash', id: jobId! }));
      if (mode === 'sync') {
        await store.sync();
        say('synced');
        setInterval(() => {}, 60_000);
        return;
      }
      say('written');
      // Never yield again: the scheduled commit cannot run before the kill.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      return;
    }
    case 'default': {
      const store = openSqliteStore();
      say(store.path);
      await store.close();
      return;
    }
    default:
      throw new Error(`unknown mode ${String(mode)}`);
  }
}

main().catch((e: unknown) => {
  say(isFleetError(e) ? `error ${e.code} ${e.detail}` : `error INTERNAL ${String(e)}`);
  process.exit(1);
});
