/**
 * The `fleet serve` process the HTTP crash test kills: the compiled `fleet`
 * (`bin/fleet.mjs` → `dist/`, built by the global setup) in its own process group, so
 * a kill takes the whole group and {@link killServers} (the test's `afterAll`) leaves
 * nothing running, failed test or not. Waits watch the process's output with a
 * generous bound; nothing sleeps.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/fleet.mjs', import.meta.url));

/** Most of a process's output kept for a failure's message. */
const KEEP_CHARS = 20_000;

/** A running (or ended) `fleet serve`. */
export interface ServerProcess {
  readonly pid: number;
  /** The last {@link KEEP_CHARS} characters it wrote, stdout and stderr. */
  output(): string;
  /** Resolves with the exit code, or the signal's name. */
  readonly exited: Promise<number | string>;
  /** True once it exited. */
  ended(): boolean;
}

const live = new Set<ChildProcess>();

/** The test process's environment minus Fleet's own variables and vitest's loader hooks. */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('FLEET_') || k.startsWith('COSMOS_') || k === 'PORT' || k === 'HOST') continue;
    if (k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  return env;
}

/** True if `port` could be bound on 127.0.0.1 a moment ago. */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/** The kernel's range of ephemeral ports (what `listen(0)` and outgoing connections use). */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low && high) return [low, high];
  } catch {
    // not Linux: the IANA dynamic range
  }
  return [49152, 65535];
}

/**
 * A TCP port on 127.0.0.1 that is free now, drawn with `random` from below the kernel's
 * ephemeral range: the server comes back on it after every kill, and while it is down
 * no `listen(0)` elsewhere and no outgoing connection (ours included) can be given it.
 */
export async function freePort(random: () => number): Promise<number> {
  const [low] = ephemeralRange();
  const from = Math.min(20_000, low - 1000);
  for (let tries = 0; tries < 200; tries++) {
    const port = from + Math.floor(random() * (low - from));
    if (await canBind(port)) return port;
  }
  throw new Error(`no free port in ${from}..${low - 1}`);
}

/**
 * Starts `fleet serve` with `env` and resolves once it printed `fleet listening on
 * <url>`; rejects with its output if it ends first or does not listen within
 * `timeoutMs`.
 */
export async function startServer(
  env: Record<string, string>,
  timeoutMs: number,
): Promise<{ server: ServerProcess; url: string }> {
  const child = spawn(process.execPath, [BIN, 'serve'], {
    cwd: ROOT,
    env: { ...baseEnv(), ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  let ended = false;
  const keep = (d: string): void => {
    out = (out + d).slice(-KEEP_CHARS);
  };
  child.stdout!.setEncoding('utf8').on('data', keep);
  child.stderr!.setEncoding('utf8').on('data', keep);
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      ended = true;
      live.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  const server: ServerProcess = {
    pid: child.pid ?? -1,
    output: () => out,
    exited,
    ended: () => ended,
  };
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`fleet serve did not listen within ${timeoutMs} ms\n${out}`));
    }, timeoutMs);
    const check = (): void => {
      const m = /^fleet listening on (http:\/\/\S+)$/m.exec(out);
      if (m) {
        finish();
        resolve(m[1]!);
      }
    };
    const finish = (): void => {
      clearTimeout(timer);
      child.stdout!.off('data', check);
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      finish();
      reject(new Error(`fleet serve exited (${code}) before it listened\n${out}`));
    });
  });
  return { server, url };
}

/** SIGKILLs the server's process group and resolves once the server is gone. */
export async function killServer(server: ServerProcess): Promise<void> {
  if (!server.ended()) {
    try {
      process.kill(-server.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await server.exited;
}

/** SIGKILLs the process group of every server still running (an `afterAll`). */
export async function killServers(): Promise<void> {
  await Promise.all(
    [...live].map(async (child) => {
      if (child.pid === undefined) return;
      const pid = child.pid;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
      await exited;
    }),
  );
}

/**
 * SIGTERM (Fleet's graceful stop) and the exit code; if the server has not exited
 * within `graceMs`, its group is SIGKILLed and the answer is `'not stopped'`.
 */
export async function stopServer(server: ServerProcess, graceMs: number): Promise<number | string> {
  if (server.ended()) return server.exited;
  process.kill(server.pid, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'not stopped'>((resolve) => {
    timer = setTimeout(() => resolve('not stopped'), graceMs);
  });
  const outcome = await Promise.race([server.exited, late]);
  clearTimeout(timer);
  if (outcome === 'not stopped') await killServer(server);
  return outcome;
}
