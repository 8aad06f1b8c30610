/**
 * `fleet serve` (what `npm start` runs) and `fleet reap [--once]`: the server and the
 * supervisor, configured by environment variables (`adapters/http/config.ts`). An
 * invalid configuration is listed, one line per variable, and the command exits 1 —
 * no stack trace.
 *
 * What this file writes to stdout and stderr is the command's own output; the server's
 * logs are pino's: human-readable on a terminal, JSON lines otherwise
 * (`FLEET_LOG_FORMAT=json|pretty` decides).
 */
import {
  Coordinator,
  type SupervisorLogger,
  type SupervisorReport,
  startSupervisor,
} from '../../runtime/index.js';
import { ConfigError, type FleetConfig, type LogLevel, loadConfig } from '../http/config.js';
import { buildServer, type FleetServer, listen, openStore, StartupError } from '../http/server.js';

const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
const err = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

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
    `pruned ${r.pruned}, stale factories ${r.staleFactories}`
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

/** `fleet serve`: the server until SIGTERM/SIGINT. */
export async function serve(): Promise<void> {
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

/** `fleet reap`: one sweep with `once` (printed as JSON with `json`), else the supervisor until a signal. */
export async function reap({ once, json }: { once: boolean; json: boolean }): Promise<void> {
  const config = configOrExit();
  const store = await openStore(config.store);
  const logger = stderrLogger(config.logLevel, { component: 'supervisor' });
  const coordinator = new Coordinator({
    store,
    leaseMs: config.leaseMs,
    logger,
    retentionMs: config.retentionMs,
  });
  const supervisor = startSupervisor({
    coordinator,
    intervalMs: config.reaperIntervalMs,
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
