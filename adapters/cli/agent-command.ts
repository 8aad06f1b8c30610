/**
 * `fleet agent --exec "<command>"`: runs a factory (see `agent/agent.ts`) with the
 * command line's options, `FLEET_URL` and `FLEET_TOKEN` (or `--token-file`), and wires
 * SIGTERM/SIGINT to its drain. The token never reaches the job's command.
 */
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { createFleetClient } from '../client/index.js';
import { Agent } from './agent/agent.js';
import { createReporter } from './agent/reporter.js';
import type { TranscriptFormat } from './agent/transcripts.js';
import { type ConnectionOptions, connection } from './connection.js';
import { CliError, print } from './output.js';
import { fleetVersion } from './version.js';

export interface AgentCommandOptions extends ConnectionOptions {
  exec: string;
  factoryId?: string;
  capabilities?: string;
  seats: number;
  timeoutMs?: number;
  workdir?: string;
  insightsFrom?: TranscriptFormat;
  drainTimeoutMs: number;
  killGraceMs: number;
  logDir?: string;
  waitMs: number;
  heartbeatMs: number;
  progressIntervalMs: number;
  json?: boolean;
}

/** The default log folder: `$XDG_STATE_HOME/fleet/logs`, else `~/.local/state/fleet/logs`. */
export function defaultLogDir(env: NodeJS.ProcessEnv = process.env): string {
  const state = env.XDG_STATE_HOME || join(env.HOME || '.', '.local', 'state');
  return join(state, 'fleet', 'logs');
}

/** The agent's environment for its children: its own, without any Fleet credential. */
export function childEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) {
    if (k === 'FLEET_TOKEN' || k === 'FLEET_TOKENS' || k.startsWith('FLEET_TOKEN')) continue;
    out[k] = v;
  }
  return out;
}

/** Runs the agent until it is drained; resolves with the exit status. */
export async function agent(o: AgentCommandOptions): Promise<number> {
  if (o.exec.trim() === '') throw new CliError('--exec needs a command', 2);
  const { url, token } = connection(o);
  const capabilities = (o.capabilities ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const report = createReporter(o.json === true, print);
  const a = new Agent({
    client: createFleetClient({ baseUrl: url, token }),
    factoryId: o.factoryId ?? `${hostname()}-${process.pid}`,
    capabilities,
    seats: o.seats,
    waitMs: o.waitMs,
    heartbeatMs: o.heartbeatMs,
    drainTimeoutMs: o.drainTimeoutMs,
    url,
    version: fleetVersion(),
    report,
    settings: {
      exec: o.exec,
      workdir: resolve(o.workdir ?? '.'),
      timeoutMs: o.timeoutMs ?? null,
      killGraceMs: o.killGraceMs,
      insightsFrom: o.insightsFrom ?? null,
      logDir: resolve(o.logDir ?? defaultLogDir()),
      progressIntervalMs: o.progressIntervalMs,
      env: childEnv(),
    },
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    if (a.signal(signal) === 'exit') {
      report.event('exiting', { code: 130, signal });
      process.exit(130);
    }
  };
  // A closed terminal (SIGHUP) drains like SIGTERM: its commands must not be orphaned.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, onSignal);
  // Whatever ends this process, no command it started outlives it.
  process.on('exit', () => a.killAll());
  return a.run();
}
