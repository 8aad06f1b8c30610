/**
 * The job's command as a child process in its own process group, so that the agent can
 * end it together with everything it started: `detached: true` makes the child a
 * session and group leader (its pid is the group id), and every signal goes to the
 * whole group (`process.kill(-pgid, signal)`). When the child itself exits, whatever it
 * left running in its group is killed too: no orphan outlives its job.
 *
 * The command runs through `/bin/sh -c` (pipes, variables and quoting work as in a
 * shell). stdin carries the job body; stdout and stderr are handed to the caller chunk
 * by chunk; file descriptor 3 is a pipe the child writes JSON lines on.
 *
 * A graceful stop (`terminate`) sends SIGTERM to the group and SIGKILL to whatever is
 * left when the grace ends — even when the shell itself has already gone: the shell
 * dies of SIGTERM at once, while the agent it started may still be saving its work.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

/** How the child ended. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running job process. */
export interface JobProcess {
  readonly pid: number;
  /** Resolves once the child exited, its group was cleared and its pipes closed. */
  readonly exited: Promise<ChildExit>;
  /** Sends `signal` to the child's whole process group; false if it was already gone. */
  killGroup(signal: NodeJS.Signals): boolean;
  /** SIGTERM to the group now, SIGKILL to what is left of it after `graceMs`. */
  terminate(graceMs: number): void;
}

export interface JobProcessOptions {
  command: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed. */
  stdin: string;
  onStdout(chunk: Buffer): void;
  onStderr(chunk: Buffer): void;
  /** Each line the child writes on fd 3. */
  onMessageLine(line: string): void;
  /** The grace of a `terminate` ended with processes left: they got SIGKILL. */
  onKilledAfterGrace?(): void;
}

/** How long to wait for the pipes to close after the group is gone. */
const PIPES_CLOSE_MS = 5000;
/** How often a stopping group is looked at, to learn that it has ended. */
const GROUP_POLL_MS = 100;

/** Sends `signal` to process group `pgid`; false when no process of it is left. */
export function killGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === 'ESRCH') return false;
    throw e;
  }
}

/** True while any process of group `pgid` exists. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the command. Resolves with the running process, or with the spawn error
 * (missing working directory, no shell...) when it could not be started at all.
 */
export function startJobProcess(
  options: JobProcessOptions,
): Promise<{ ok: true; process: JobProcess } | { ok: false; error: Error }> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn('/bin/sh', ['-c', options.command], {
        cwd: options.cwd,
        env: options.env,
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
      });
    } catch (e) {
      resolve({ ok: false, error: e as Error });
      return;
    }
    child.once('error', (error) => resolve({ ok: false, error }));
    child.once('spawn', () => {
      const pid = child.pid as number;
      const stdout = child.stdout as Readable;
      const stderr = child.stderr as Readable;
      const fd3 = child.stdio[3] as Readable;
      stdout.on('data', options.onStdout);
      stderr.on('data', options.onStderr);
      createInterface({ input: fd3, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) =>
        options.onMessageLine(line),
      );
      // A child that never reads stdin closes it early: that is not an error of ours.
      child.stdin?.on('error', () => {});
      child.stdin?.end(options.stdin);
      const pipes = [stdout, stderr, fd3].map(
        (s) =>
          new Promise<void>((done) => {
            if (s.destroyed) done();
            else s.once('close', () => done());
          }),
      );
      // Set by terminate(): the time (monotonic) the group's grace ends.
      let graceEnds: number | null = null;
      let graceTimer: NodeJS.Timeout | undefined;
      let escalated = false;
      const endGrace = (): void => {
        clearTimeout(graceTimer);
        if (!escalated && groupAlive(pid)) {
          escalated = true;
          killGroup(pid, 'SIGKILL');
          options.onKilledAfterGrace?.();
        }
      };
      /** Resolves once the group is empty, or its grace has ended (then SIGKILL). */
      const groupEnded = (): Promise<void> =>
        new Promise((done) => {
          const look = (): void => {
            if (!groupAlive(pid)) {
              clearTimeout(graceTimer);
              done();
            } else if (graceEnds === null || performance.now() >= graceEnds) {
              // Stragglers of the group would keep the pipes open and run on: end them.
              if (graceEnds === null) killGroup(pid, 'SIGKILL');
              else endGrace();
              done();
            } else {
              setTimeout(look, GROUP_POLL_MS);
            }
          };
          look();
        });
      const exited = new Promise<ChildExit>((done) => {
        child.once('exit', (code, signal) => {
          void groupEnded().then(() => {
            let timer: NodeJS.Timeout | undefined;
            const closed = Promise.all(pipes).then(() => clearTimeout(timer));
            const late = new Promise<void>((r) => {
              timer = setTimeout(() => {
                // A grandchild that left the group (setsid) still holds a pipe: stop reading.
                for (const s of [stdout, stderr, fd3]) s.destroy();
                r();
              }, PIPES_CLOSE_MS);
            });
            void Promise.race([closed, late]).then(() => done({ code, signal }));
          });
        });
      });
      resolve({
        ok: true,
        process: {
          pid,
          exited,
          killGroup: (signal) => killGroup(pid, signal),
          terminate(graceMs) {
            if (graceEnds !== null) return;
            graceEnds = performance.now() + graceMs;
            killGroup(pid, 'SIGTERM');
            graceTimer = setTimeout(endGrace, graceMs);
          },
        },
      });
    });
  });
}
