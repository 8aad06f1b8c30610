/**
 * Runs the `fleet` command (`node bin/fleet.mjs ...`) as a child process, for tests of
 * the standalone server and the CLI. Every child started here is tracked so a test's
 * `afterEach(killAll)` leaves nothing running, even when the test failed half-way.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/fleet.mjs', import.meta.url));

export interface FleetProcess {
  child: ChildProcess;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name) when the process ends. */
  exited: Promise<number | string>;
}

export interface RunningFleet extends FleetProcess {
  /** From the `fleet listening on <url>` line. */
  url: string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | string>;
}

const live = new Set<ChildProcess>();

/** Environment for a child: this process's, minus Fleet's own variables, plus `env`. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('FLEET_') || k.startsWith('COSMOS_') || k === 'PORT' || k === 'HOST') continue;
    // vitest's loader hooks are not for the child
    if (k === 'NODE_OPTIONS') continue;
    base[k] = v;
  }
  return { ...base, FLEET_LOG_LEVEL: 'warn', ...env };
}

/** Starts `fleet <args>` with `env` (Fleet's variables are never inherited). */
export function runFleet(args: string[], env: Record<string, string> = {}): FleetProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Runs `fleet <args>` to completion. */
export async function fleetOnce(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const p = runFleet(args, env);
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/**
 * Starts `fleet serve` and resolves once it printed `fleet listening on <url>`; rejects
 * (with its output) if it exits first or takes longer than `timeoutMs`.
 */
export async function startFleet(
  env: Record<string, string>,
  timeoutMs = 20_000,
): Promise<RunningFleet> {
  const p = runFleet(['serve'], { HOST: '127.0.0.1', PORT: '0', ...env });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      p.child.kill('SIGKILL');
      reject(
        new Error(`fleet serve did not listen in ${timeoutMs} ms\n${p.stdout()}${p.stderr()}`),
      );
    }, timeoutMs);
    const check = (): void => {
      const m = /^fleet listening on (http:\/\/\S+)$/m.exec(p.stdout());
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    p.child.stdout!.on('data', check);
    void p.exited.then((code) => {
      clearTimeout(timer);
      reject(
        new Error(`fleet serve exited (${code}) before listening\n${p.stdout()}${p.stderr()}`),
      );
    });
  });
  return {
    ...p,
    url,
    stop() {
      p.child.kill('SIGTERM');
      return p.exited;
    },
  };
}

/** Kills every child still running (SIGKILL) and waits for them. */
export async function killAll(): Promise<void> {
  const children = [...live];
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGKILL');
        }),
    ),
  );
}
