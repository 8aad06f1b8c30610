/**
 * The `fleet` command (`bin/fleet.mjs` runs this file through tsx).
 *
 *   fleet serve              start the server (what `npm start` runs)
 *   fleet reap --once        run one supervisor sweep against the configured store, print
 *                            its counts and exit (1 if the sweep failed)
 *   fleet reap               run only the supervisor, until SIGTERM/SIGINT
 *   fleet help               this text
 *
 * Configuration comes from the environment (see `adapters/http/config.ts`); an invalid
 * one is listed, one line per variable, and the command exits with status 1 — no stack
 * trace. Exit status: 0 success, 1 failure (configuration, store, failed sweep), 2 usage.
 *
 * What this file writes to stdout and stderr is the CLI's own output; the server's logs
 * are structured (pino via Fastify).
 */

import {
  Coordinator,
  type SupervisorLogger,
  type SupervisorReport,
  startSupervisor,
} from '../../runtime/index.js';
import { ConfigError, type FleetConfig, type LogLevel, loadConfig } from '../http/config.js';
import { buildServer, type FleetServer, listen, openStore, StartupError } from '../http/server.js';
import { runMachinesCommand } from '../ui/machines-command.js';

const USAGE = `usage: fleet <command>

commands:
  serve           start the Fleet server (configured by environment variables)
  reap --once     run one supervisor sweep against the configured store and exit
                  (--json prints the counts as JSON)
  reap            run only the supervisor until SIGTERM/SIGINT
  machines        print a state machine: --format svg|mermaid|scxml|json
                  --machine job|supervisor (fleet machines --help)
  help            show this text

environment (an empty variable counts as unset):                       default
  HOST                      interface to listen on                     127.0.0.1
  PORT                      TCP port; 0 = any free port                8080
  FLEET_STORE               sqlite | memory | cosmos                   sqlite
  FLEET_DB                  the SQLite database file                   ./data/fleet.db
  FLEET_TOKENS              JSON [{ "token", "productId", "roles" }]
  FLEET_TOKENS_FILE         a file holding that JSON
  FLEET_LEASE_MS            lease length of a claim, ms                60000
  FLEET_REAPER_INTERVAL_MS  mean wait between sweeps, ms               5000
  FLEET_BODY_LIMIT          largest request body: bytes, KiB, MiB      1MiB
  FLEET_LOG_LEVEL           fatal ... trace, or silent                 info

With neither FLEET_TOKENS nor FLEET_TOKENS_FILE, a development admin token for
product "default" is made, kept in dev-token.json beside the database, and printed.
`;

const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
const err = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** Thrown for a bad command line; exits 2 with the usage. */
class UsageError extends Error {}

/** Reads the configuration, or prints every problem and exits 1. */
function configOrExit(): FleetConfig {
  try {
    return loadConfig(process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      err('fleet: the configuration is invalid:');
      for (const p of e.problems) err(`  ${p}`);
      process.exit(1);
    }
    throw e;
  }
}

const LEVELS: Record<LogLevel, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Number.POSITIVE_INFINITY,
};

/** A JSON-lines logger on stderr in pino's format, for the commands that run no server. */
function stderrLogger(level: LogLevel, bindings: object): SupervisorLogger {
  const threshold = LEVELS[level];
  const at =
    (name: Exclude<LogLevel, 'silent'>) =>
    (obj: object, msg: string): void => {
      if (LEVELS[name] < threshold) return;
      const line = { level: LEVELS[name], time: Date.now(), pid: process.pid, ...bindings, ...obj };
      err(JSON.stringify({ ...line, msg }));
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function describeReport(r: SupervisorReport, durationMs: number): string {
  return (
    `sweep succeeded in ${durationMs} ms: reaped ${r.reaped}, retried ${r.retried}, ` +
    `budget exceeded ${r.budgetExceeded}, repaired ${r.repaired}, unblocked ${r.unblocked}, ` +
    `stale factories ${r.staleFactories}`
  );
}

/** Runs `shutdown` on the first SIGTERM/SIGINT; a second one exits 1 at once. */
function onSignals(shutdown: (signal: string) => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals): void => {
    if (stopping) {
      err(`fleet: ${signal} again: exiting without waiting`);
      process.exit(1);
    }
    stopping = true;
    shutdown(signal).then(
      () => process.exit(0),
      (e: unknown) => {
        err(`fleet: shutdown failed: ${(e as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}

async function serve(): Promise<void> {
  const config = configOrExit();
  const server: FleetServer = await buildServer(config);
  const log = server.app.log;
  process.on('uncaughtException', (e) => {
    log.fatal({ err: e }, 'uncaught exception; exiting');
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    log.fatal({ err: e }, 'unhandled rejection; exiting');
    process.exit(1);
  });
  onSignals(async (signal) => {
    log.info({ signal }, 'shutting down: finishing in-flight requests');
    await server.close();
    log.info('stopped');
  });
  if (server.devToken) {
    const { grant, file, created } = server.devToken;
    out(
      `fleet development token (product "${grant.productId}", roles ${grant.roles.join(', ')}): ${grant.token}`,
    );
    out(
      file
        ? `  ${created ? 'stored in' : 'reused from'} ${file}; set FLEET_TOKENS or FLEET_TOKENS_FILE for real tokens`
        : '  kept in memory only (FLEET_STORE=memory); set FLEET_TOKENS for real tokens',
    );
  }
  let url: string;
  try {
    url = await listen(server);
  } catch (e) {
    await server.close().catch(() => {});
    throw new StartupError(
      `cannot listen on ${config.host}:${config.port}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  out(`fleet listening on ${url}`);
}

async function reap(args: string[]): Promise<void> {
  const once = args.includes('--once');
  const json = args.includes('--json');
  const unknown = args.filter((a) => a !== '--once' && a !== '--json');
  if (unknown.length > 0) throw new UsageError(`unknown option ${unknown.join(' ')}`);
  const config = configOrExit();
  const store = await openStore(config.store);
  const logger = stderrLogger(config.logLevel, { component: 'supervisor' });
  const coordinator = new Coordinator({ store, leaseMs: config.leaseMs, logger });
  const products =
    config.tokens.source === 'dev'
      ? ['default']
      : [...new Set(config.tokens.grants.map((g) => g.productId))];
  const supervisor = startSupervisor({
    coordinator,
    intervalMs: config.reaperIntervalMs,
    products: () => products,
    logger,
  });
  const stop = async (): Promise<void> => {
    await supervisor.stop();
    await coordinator.drain();
    await store.close();
    if (!once) logger.info({}, 'supervisor stopped');
  };
  if (!once) {
    onSignals(stop);
    logger.info({ intervalMs: config.reaperIntervalMs }, 'supervisor running');
    return;
  }
  const outcome = await supervisor.sweepNow();
  await stop();
  if (outcome.phase === 'failed') {
    const e = outcome.error as { detail?: string; message?: string };
    err(`fleet: the sweep failed: ${e.detail ?? e.message ?? String(outcome.error)}`);
    process.exit(1);
  }
  out(
    json
      ? JSON.stringify({ ...outcome.report, durationMs: outcome.durationMs })
      : describeReport(outcome.report, outcome.durationMs),
  );
}

/** Runs the command line `argv` (without node and the script). */
export async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'serve':
        if (args.length > 0)
          throw new UsageError(`serve takes no arguments (got ${args.join(' ')})`);
        await serve();
        return;
      case 'reap':
        await reap(args);
        return;
      case 'machines':
        process.exitCode = runMachinesCommand(
          args,
          (t) => process.stdout.write(t),
          (t) => process.stderr.write(t),
        );
        return;
      case 'help':
      case '--help':
      case '-h':
        out(USAGE.trimEnd());
        return;
      case undefined:
        throw new UsageError('no command given');
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`fleet: ${e.message}`);
      err(USAGE.trimEnd());
      process.exit(2);
    }
    if (e instanceof StartupError || e instanceof ConfigError) {
      err(`fleet: ${e.message}`);
      process.exit(1);
    }
    const detail = (e as { detail?: string }).detail;
    err(`fleet: ${detail ?? (e instanceof Error ? e.message : String(e))}`);
    process.exit(1);
  }
}
