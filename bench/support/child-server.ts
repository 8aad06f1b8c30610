/**
 * Child processes of the benchmarks: a server started with `node <args>`, ready once a
 * stdout line names its URL, stopped with SIGTERM (SIGKILL after 5 s); every child still
 * alive is killed on a deadline and when the bench process exits (`killLive`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ChildServer {
  name: string;
  url: string;
  pid: number;
  /** SIGTERM, then SIGKILL if it has not exited within 5 s. Idempotent. */
  stop(): Promise<void>;
}

/** Children alive right now: killed on a deadline, and when this process exits. */
export const live = new Set<ChildProcess>();
export const killLive = (): void => {
  for (const c of live) c.kill('SIGKILL');
};

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Spawns `node <args>` and resolves once a stdout line matches `ready` (its first group
 * is the URL). Rejects, with the child's last output, if it exits or stays silent first.
 */
export function startChild(
  name: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
  signal: AbortSignal,
): Promise<ChildServer> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const tail: string[] = [];
  const keep = (line: string): void => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
  };
  createInterface({ input: child.stderr! }).on('line', keep);
  const lines = createInterface({ input: child.stdout! });
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited(child);
      clearTimeout(killer);
    })();
    return stopping;
  };
  return new Promise<ChildServer>((resolve, reject) => {
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      void stop();
      reject(
        new Error(
          `${name} ${why}${tail.length ? `; its last output:\n  ${tail.join('\n  ')}` : ''}`,
        ),
      );
    };
    const onAbort = (): void => fail('did not start before the deadline');
    const timer = setTimeout(() => fail('printed no URL within 30 s'), 30_000);
    signal.addEventListener('abort', onAbort, { once: true });
    child.once('exit', (code, sig) => fail(`exited (${sig ?? `status ${code}`}) before listening`));
    child.once('error', (e) => fail(`could not be started: ${e.message}`));
    lines.on('line', (line) => {
      const m = ready.exec(line);
      if (!m || settled) return keep(line);
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve({ name, url: m[1]!, pid: child.pid!, stop });
    });
  });
}

/** The inherited environment without any `FLEET_*` (the server warns about unknown ones). */
export function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('FLEET_')),
  ) as NodeJS.ProcessEnv;
}
