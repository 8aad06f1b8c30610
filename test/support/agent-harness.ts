/**
 * Real processes for the agent and CLI tests: `fleet serve` on 127.0.0.1:0 (memory
 * store unless told otherwise), `fleet agent --json` processes whose report lines are
 * parsed as they arrive, and one-shot `fleet <command>` runs — all the compiled `fleet`
 * (`bin/fleet.mjs` → `dist/`, built by the global setup).
 *
 * Every process is started in its own process group (`detached: true`) and
 * {@link killEverything} (an `afterEach`) kills each group with SIGKILL, together with
 * the groups of the jobs' commands that the fake agent recorded, so nothing outlives a
 * test — failed or not. Nothing here sleeps to wait: waits poll a condition (or watch
 * a stream) with a generous bound.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFleetClient, type FleetClient, type Job } from '../../adapters/client/index.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = fileURLToPath(new URL('../../bin/fleet.mjs', import.meta.url));
/** The fake coding agent the tests run as the job's command. */
export const FAKE_AGENT = fileURLToPath(
  new URL('../agent/fixtures/fake-agent.mjs', import.meta.url),
);
/** A command that ignores SIGTERM, grandchild included (see the script). */
export const STUBBORN = `exec sh "${fileURLToPath(new URL('../agent/fixtures/stubborn.sh', import.meta.url))}"`;
/** Test timeout of the files that run processes: several waits of up to {@link WAIT_MS}. */
export const PROCESS_TEST_MS = 300_000;

/** The admin token of every test server. */
export const TOKEN = 'agent-test-admin-token';
/** A second product's token (tenancy checks). */
export const OTHER_TOKEN = 'agent-test-other-token';
const TOKENS = JSON.stringify([
  { token: TOKEN, productId: 'agent-tests', roles: ['admin'] },
  { token: OTHER_TOKEN, productId: 'other', roles: ['admin'] },
]);

/** Generous bound of every wait (a loaded 2-core machine is slow, not wrong). */
export const WAIT_MS = 90_000;

/** A process and everything it wrote. */
export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code, or the signal's name. */
  readonly exited: Promise<number | string>;
  /** Resolves once stdout has a line matching `re` (rejects if the process ends first, or after `timeoutMs`). */
  waitForLine(re: RegExp, what: string, timeoutMs?: number): Promise<RegExpExecArray>;
}

const groups = new Set<number>();
const scratchDirs = new Set<string>();

/** Fleet's own variables are never inherited from the test process. */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('FLEET_') || k.startsWith('COSMOS_') || k === 'PORT' || k === 'HOST') continue;
    if (k === 'NODE_OPTIONS') continue; // vitest's loader hooks are not for children
    env[k] = v;
  }
  return env;
}

/** Starts `command args` in its own process group, tracked for {@link killEverything}. */
export function spawnTracked(
  command: string,
  args: string[],
  env: Record<string, string> = {},
  options: { cwd?: string; stdin?: string } = {},
): Proc {
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...baseEnv(), ...env },
    detached: true,
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (child.pid !== undefined) groups.add(child.pid);
  if (options.stdin !== undefined) child.stdin?.end(options.stdin);
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    for (const l of listeners) l();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      resolve(code ?? signal ?? 'unknown');
      for (const l of listeners) l();
    });
  });
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  return {
    child,
    pid: child.pid ?? -1,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForLine(re, what, timeoutMs = WAIT_MS) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          for (const line of out.split('\n')) {
            const m = re.exec(line);
            if (m) {
              done();
              resolve(m);
              return;
            }
          }
          if (ended) {
            done();
            reject(
              new Error(`${what}: the process ended first\n--- stdout\n${out}\n--- stderr\n${err}`),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `${what}: not within ${timeoutMs} ms\n--- stdout\n${out}\n--- stderr\n${err}`,
            ),
          );
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
  };
}

/** Runs `fleet args` (compiled) as a tracked process. */
export function runFleet(
  args: string[],
  env: Record<string, string> = {},
  options: { cwd?: string; stdin?: string } = {},
): Proc {
  return spawnTracked(process.execPath, [BIN, ...args], env, options);
}

/** Runs `fleet args` to its end. */
export async function fleet(
  args: string[],
  env: Record<string, string> = {},
  options: { cwd?: string; stdin?: string } = {},
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const p = runFleet(args, env, options);
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/**
 * Blanks the outer `npm test`'s own `npm_*` settings, for a nested npm or npx (they
 * would otherwise apply to it: prefix, lifecycle event, user agent...).
 */
export function withoutNpmSettings(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of Object.keys(process.env)) if (k.toLowerCase().startsWith('npm_')) env[k] = '';
  return env;
}

/** A temporary folder removed by {@link killEverything}. */
export function scratch(prefix = 'fleet-agent-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratchDirs.add(dir);
  return dir;
}

/** A running `fleet serve`. */
export interface TestServer {
  url: string;
  proc: Proc;
  client: FleetClient;
  /** Environment for client commands and agents that talk to it. */
  env: Record<string, string>;
}

/** Starts `fleet serve` and resolves once it listens. */
export async function startServer(
  options: { leaseMs?: number; reaperIntervalMs?: number; env?: Record<string, string> } = {},
): Promise<TestServer> {
  const proc = runFleet(['serve'], {
    HOST: '127.0.0.1',
    PORT: '0',
    FLEET_STORE: 'memory',
    FLEET_TOKENS: TOKENS,
    FLEET_LOG_LEVEL: 'warn',
    FLEET_LOG_FORMAT: 'json',
    FLEET_LEASE_MS: String(options.leaseMs ?? 60_000),
    FLEET_REAPER_INTERVAL_MS: String(options.reaperIntervalMs ?? 5000),
    ...options.env,
  });
  const m = await proc.waitForLine(/^fleet listening on (http:\/\/\S+)$/, 'fleet serve listening');
  const url = m[1]!;
  return {
    url,
    proc,
    client: createFleetClient({ baseUrl: url, token: TOKEN }),
    env: { FLEET_URL: url, FLEET_TOKEN: TOKEN },
  };
}

/** One report line of `fleet agent --json`. */
export interface AgentEvent {
  at: string;
  event: string;
  jobId?: string;
  [field: string]: unknown;
}

/** A running `fleet agent --json`. */
export interface TestAgent {
  proc: Proc;
  /** Every report line so far. */
  events(): AgentEvent[];
  /** Resolves with the first report line that matches (rejects if the agent ends first). */
  waitFor(what: string, match: (e: AgentEvent) => boolean, timeoutMs?: number): Promise<AgentEvent>;
}

/**
 * Starts `fleet agent --json --exec "node fake-agent.mjs" ...args` against `server`;
 * `dir` is the fake agent's scratch folder (it records what it saw there).
 */
export function startAgent(
  server: TestServer,
  dir: string,
  args: string[] = [],
  env: Record<string, string> = {},
): TestAgent {
  const hasExec = args.includes('--exec');
  const proc = runFleet(
    [
      'agent',
      '--json',
      ...(hasExec ? [] : ['--exec', `"${process.execPath}" "${FAKE_AGENT}"`]),
      ...(args.includes('--workdir') ? [] : ['--workdir', dir]),
      '--log-dir',
      join(dir, 'logs'),
      ...args,
    ],
    { ...server.env, FAKE_DIR: dir, ...env },
  );
  const events = (): AgentEvent[] =>
    proc
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as AgentEvent);
  return {
    proc,
    events,
    async waitFor(what, match, timeoutMs = WAIT_MS) {
      let ended = false;
      void proc.exited.then(() => {
        ended = true;
      });
      const bound = performance.now() + timeoutMs;
      for (;;) {
        const found = events().find(match);
        if (found) return found;
        if (ended || performance.now() > bound) {
          throw new Error(
            `agent: ${what}: ${ended ? 'the agent ended first' : `not within ${timeoutMs} ms`}\n${proc.stdout()}\n${proc.stderr()}`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/**
 * Polls `probe` (every 50 ms) until it returns something truthy; throws after
 * `timeoutMs`. For conditions of the server's state, where no event can be watched.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  timeoutMs = WAIT_MS,
): Promise<T> {
  const bound = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (performance.now() > bound) {
      throw new Error(
        `${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The job once it is in one of `stages`. */
export function waitForStage(server: TestServer, id: string, ...stages: string[]): Promise<Job> {
  return waitFor(`job ${id} in ${stages.join('|')}`, async () => {
    const job = await server.client.getJob(id);
    return stages.includes(job.stage) ? job : null;
  });
}

/** True while `pid` is a live process (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** What the fake agent recorded for a job (`<jobId>.<name>.json` in its folder). */
export function recorded<T = Record<string, unknown>>(
  dir: string,
  jobId: string,
  name: string,
): T | null {
  try {
    return JSON.parse(readFileSync(join(dir, `${jobId}.${name}.json`), 'utf8')) as T;
  } catch {
    return null;
  }
}

const killGroup = (pgid: number): void => {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // gone already
  }
};

/** Kills every tracked process group and every recorded job command group; removes scratch folders. */
export async function killEverything(): Promise<void> {
  for (const dir of scratchDirs) {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names.filter((n) => /\.pids(-\d+)?\.json$/.test(n))) {
      try {
        const pids = JSON.parse(readFileSync(join(dir, name), 'utf8')) as Record<string, number>;
        for (const pid of Object.values(pids)) {
          if (typeof pid === 'number' && pid > 1) {
            killGroup(pid);
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // gone
            }
          }
        }
      } catch {
        // half-written: the group kill of its agent covers it
      }
    }
  }
  for (const pgid of groups) {
    try {
      process.kill(pgid, 'SIGCONT'); // a stopped process cannot die until it runs
    } catch {
      // gone
    }
    killGroup(pgid);
  }
  groups.clear();
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
  scratchDirs.clear();
}
