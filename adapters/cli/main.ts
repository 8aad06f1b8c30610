/**
 * The `fleet` command (`bin/fleet.mjs` runs the compiled form of this file). Parsing is
 * commander's; each command's code is imported only when it runs, so `fleet help` and
 * the client commands start without loading the server.
 *
 * Exit status: 0 success; 1 failure (an error answer, an unreachable server, a bad
 * configuration, a failed sweep, a cancelled drain); 2 a bad command line.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { FleetApiError, FleetNetworkError } from '../client/index.js';
import { parseDuration } from './duration.js';
import { CliError, printErr } from './output.js';
import { STAGES } from './stages.js';
import { fleetVersion } from './version.js';

const SERVER_ENVIRONMENT = `
environment of serve and reap (an empty variable counts as unset):      default
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
  FLEET_LOG_FORMAT          json | pretty                 pretty on a terminal, else json
  FLEET_RETENTION           keep finished jobs this long; 0 = forever  30d

With neither FLEET_TOKENS nor FLEET_TOKENS_FILE, a development admin token for
product "default" is made, kept in dev-token.json beside the database, and printed.`;

const CLIENT_ENVIRONMENT = `
Client commands and the agent read FLEET_URL (default http://127.0.0.1:8080) and
FLEET_TOKEN, or --url and --token-file (a file with the token, or JSON with "token",
such as the development server's data/dev-token.json).`;

function integer(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number ≥ 0');
  return n;
}

function duration(value: string): number {
  try {
    return parseDuration(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** `--url`, `--token-file` and `--json` of every client command. */
function clientCommand(program: Command, name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('--url <url>', 'the Fleet server (default: FLEET_URL, else http://127.0.0.1:8080)')
    .option('--token-file <file>', 'read the token from this file (default: FLEET_TOKEN)')
    .option('--json', 'print JSON for scripts');
}

/** Runs a command's module and sets the exit status it answers. */
const run =
  <A extends unknown[]>(action: (...args: A) => Promise<number>) =>
  async (...args: A): Promise<void> => {
    process.exitCode = await action(...args);
  };

type ClientCommands = typeof import('./client-commands.js');

/** The action of a client command: `name` of client-commands.ts, imported when it runs. */
function fromClientCommands<
  K extends 'submit' | 'jobs' | 'job' | 'factories' | 'requeue' | 'cancel',
>(name: K) {
  return run(async (...args: Parameters<ClientCommands[K]>) => {
    const commands = await import('./client-commands.js');
    return (commands[name] as (...a: Parameters<ClientCommands[K]>) => Promise<number>)(...args);
  });
}

/** The command line of `fleet`. */
export function buildProgram(): Command {
  const program = new Command('fleet')
    .usage('<command> [options]')
    .description('Fleet: the coordinator for fleets of AI coding agents.')
    .version(fleetVersion(), '-V, --version')
    .configureHelp({ styleTitle: (title) => title.toLowerCase(), sortSubcommands: false })
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      // `error: unknown command 'x'` → `fleet: unknown command x`
      outputError: (str, write) =>
        write(`fleet: ${str.replace(/^error: /, '').replace(/'([^']*)'/g, '$1')}`),
    })
    .addHelpText('after', `${CLIENT_ENVIRONMENT}\n${SERVER_ENVIRONMENT}`);
  program.addHelpCommand('help [command]', 'show help for a command');

  program
    .command('serve')
    .description(
      'start the Fleet server (configured by environment variables; what npm start runs)',
    )
    .addHelpText('after', SERVER_ENVIRONMENT)
    .action(async () => {
      const { serve } = await import('./serve-command.js');
      await serve();
    });

  program
    .command('reap')
    .description('run the supervisor against the configured store (--once: one sweep, then exit)')
    .option('--once', 'one sweep, print its counts, exit (1 if it failed)')
    .option('--json', 'print the counts as JSON')
    .addHelpText('after', SERVER_ENVIRONMENT)
    .action(async (o: { once?: boolean; json?: boolean }) => {
      const { reap } = await import('./serve-command.js');
      await reap({ once: o.once === true, json: o.json === true });
    });

  clientCommand(program, 'agent', 'run a factory: claim jobs and run a command for each')
    .requiredOption(
      '--exec <command>',
      'the command to run per job (by /bin/sh -c); the job body is its stdin',
    )
    .option('--factory-id <id>', 'this factory’s id (default: <host>-<pid>)')
    .option('--capabilities <list>', 'comma-separated capabilities this factory has')
    .option('--seats <n>', 'jobs at once', integer(1, 1000), 1)
    .option(
      '--timeout <duration>',
      'longest a command may run (e.g. 2h, 30m); then SIGTERM, grace, SIGKILL',
      duration,
    )
    .option('--workdir <dir>', 'the command’s working directory (default: the current one)')
    .addOption(
      new Option('--insights-from <agent>', 'read usage from the command’s stdout').choices([
        'claude',
        'codex',
      ]),
    )
    .option(
      '--drain-timeout <duration>',
      'on SIGTERM, longest to wait for running jobs',
      duration,
      15 * 60_000,
    )
    .option('--kill-grace <duration>', 'between SIGTERM and SIGKILL', duration, 10_000)
    .option(
      '--log-dir <dir>',
      'where each run’s stdout/stderr is kept (default: ~/.local/state/fleet/logs)',
    )
    .addOption(
      new Option('--wait <duration>', 'long-poll of a claim')
        .argParser(duration)
        .default(20_000)
        .hideHelp(),
    )
    .addOption(
      new Option('--heartbeat <duration>', 'heartbeat interval')
        .argParser(duration)
        .default(10_000)
        .hideHelp(),
    )
    .addOption(
      new Option('--progress-interval <duration>', 'insights at most this often')
        .argParser(duration)
        .default(15_000)
        .hideHelp(),
    )
    .addHelpText(
      'after',
      `
The command gets FLEET_JOB_ID, FLEET_RUN_ID, FLEET_LEASE_EPOCH, FLEET_ATTEMPT and
FLEET_CHECKPOINT (the last checkpoint, JSON) in its environment, never the token, and
may write JSON lines on file descriptor 3:
  {"stage":"review"}  {"checkpoint":{"wipBranch":"..."}}  {"insights":{"tokensIn":1200}}
  {"result":{...}}    {"fail":{"class":"transient","message":"..."}}
Exit 0 ships the job; 75 fails it as transient (retried); another status fails it
(agent_exit). First SIGTERM drains, a second cancels the jobs, a third exits at once.`,
    )
    .action(
      run(async (o: Record<string, unknown>) => {
        const { agent } = await import('./agent-command.js');
        const waitMs = o.wait as number;
        if (waitMs > 30_000) throw new CliError('--wait is at most 30s', 2);
        return agent({
          exec: o.exec as string,
          seats: o.seats as number,
          drainTimeoutMs: o.drainTimeout as number,
          killGraceMs: o.killGrace as number,
          waitMs,
          heartbeatMs: o.heartbeat as number,
          progressIntervalMs: o.progressInterval as number,
          ...(o.url ? { url: o.url as string } : {}),
          ...(o.tokenFile ? { tokenFile: o.tokenFile as string } : {}),
          ...(o.factoryId ? { factoryId: o.factoryId as string } : {}),
          ...(o.capabilities ? { capabilities: o.capabilities as string } : {}),
          ...(o.timeout !== undefined ? { timeoutMs: o.timeout as number } : {}),
          ...(o.workdir ? { workdir: o.workdir as string } : {}),
          ...(o.insightsFrom ? { insightsFrom: o.insightsFrom as 'claude' | 'codex' } : {}),
          ...(o.logDir ? { logDir: o.logDir as string } : {}),
          json: o.json === true,
        });
      }),
    );

  clientCommand(program, 'submit', 'submit a job: its markdown body from FILE, or stdin with -')
    .argument('<file>', 'the job body (markdown), or - for stdin')
    .requiredOption('--key <key>', 'idempotency key: the same key and content submit once')
    .addOption(
      new Option('--priority <priority>', 'claim order').choices([
        'critical',
        'high',
        'medium',
        'low',
      ]),
    )
    .option('--caps <list>', 'capabilities a factory needs, comma-separated')
    .option('--deps <ids>', 'job ids this job waits for, comma-separated')
    .option('--budget-usd <n>', 'cost budget in dollars', positiveNumber)
    .action(fromClientCommands('submit'));

  clientCommand(program, 'jobs', 'list jobs, newest first')
    .addOption(new Option('--stage <stage>', 'only jobs in this stage').choices(STAGES))
    .option('--limit <n>', 'how many', integer(1, 500), 20)
    .option('--cursor <cursor>', 'the next page (printed after a full page)')
    .action(fromClientCommands('jobs'));

  clientCommand(program, 'job', 'show a job, its runs and its events')
    .argument('<id>', 'the job id')
    .action(fromClientCommands('job'));

  clientCommand(program, 'watch', 'a live view of jobs by stage and the factories')
    .option('--interval <duration>', 'between frames', duration, 2000)
    .option('--once', 'one frame, then exit')
    .action(
      run(async (o) => {
        const { watch } = await import('./watch-command.js');
        return watch({ ...o, intervalMs: o.interval });
      }),
    );

  clientCommand(program, 'factories', 'list the factories and their health').action(
    fromClientCommands('factories'),
  );

  clientCommand(program, 'requeue', 'move a failed or dead-lettered job back to the queue (admin)')
    .argument('<id>', 'the job id')
    .action(fromClientCommands('requeue'));

  clientCommand(program, 'cancel', 'cancel a job: dead_letter, its holder fenced out (admin)')
    .argument('<id>', 'the job id')
    .option('--reason <text>', 'recorded on the event')
    .action(fromClientCommands('cancel'));

  clientCommand(program, 'events', 'print a job’s events (--follow: until it is shipped or dead)')
    .argument('<id>', 'the job id')
    .option('-f, --follow', 'keep printing new events')
    .option('--interval <duration>', 'between polls of --follow', duration, 1000)
    .action(
      run(async (id: string, o) => {
        const { events } = await import('./client-commands.js');
        return events(id, { ...o, intervalMs: o.interval });
      }),
    );

  program
    .command('backup')
    .description(
      'download a consistent copy of the running server’s SQLite database (an operator admin token)',
    )
    .argument('<file>', 'where to write the copy (refused if it exists, unless --overwrite)')
    .option('--url <url>', 'the Fleet server (default: FLEET_URL, else http://127.0.0.1:8080)')
    .option('--token-file <file>', 'read the token from this file (default: FLEET_TOKEN)')
    .option('--overwrite', 'replace FILE if it exists')
    .action(
      run(async (file: string, o: Record<string, unknown>) => {
        const { connection } = await import('./connection.js');
        const { runBackupCommand } = await import('./backup-command.js');
        const { url, token } = connection({
          ...(o.url ? { url: o.url as string } : {}),
          ...(o.tokenFile ? { tokenFile: o.tokenFile as string } : {}),
        });
        return runBackupCommand(
          { url, token, file, overwrite: o.overwrite === true },
          (line) => process.stdout.write(`${line}\n`),
          (line) => process.stderr.write(`${line}\n`),
        );
      }),
    );

  // Retention (issue 14)
  clientCommand(
    program,
    'prune',
    'delete jobs that finished longer ago than an age, with their history (an operator admin token)',
  )
    .requiredOption(
      '--older-than <age>',
      'finished (shipped or dead_letter) longer ago than this: 30d, 12h, 1d12h, 90m',
    )
    .option('--dry-run', 'count what would go; delete nothing')
    .action(
      run(async (o: Record<string, unknown>) => {
        const { prune } = await import('./prune-command.js');
        return prune({
          olderThan: o.olderThan as string,
          dryRun: o.dryRun === true,
          json: o.json === true,
          ...(o.url ? { url: o.url as string } : {}),
          ...(o.tokenFile ? { tokenFile: o.tokenFile as string } : {}),
        });
      }),
    );

  // `fleet machines` is the inspector's (adapters/ui/machines-command.ts): its own
  // options and help, parsed there.
  program
    .command('machines')
    .description('print a state machine: --format svg|mermaid|scxml|json --machine job|supervisor')
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .helpOption(false)
    .argument('[args...]')
    .action(
      run(async (args: string[] = []) => {
        const { runMachinesCommand } = await import('../ui/machines-command.js');
        return runMachinesCommand(
          args,
          (t) => process.stdout.write(t),
          (t) => process.stderr.write(t),
        );
      }),
    );

  return program;
}

/** Maps any failure of a command to its message and exit status. */
function failure(e: unknown): { message: string | null; code: number } {
  if (e instanceof CommanderError) {
    const ok =
      e.code === 'commander.helpDisplayed' ||
      e.code === 'commander.version' ||
      e.code === 'commander.help';
    // commander printed its own message already
    return { message: null, code: ok ? 0 : 2 };
  }
  if (e instanceof CliError) return { message: e.message, code: e.exitCode };
  if (e instanceof FleetApiError)
    return { message: `${e.detail} (${e.code}, HTTP ${e.status})`, code: 1 };
  if (e instanceof FleetNetworkError) return { message: e.message, code: 1 };
  const name = (e as { name?: string } | null)?.name;
  if (name === 'StartupError' || name === 'ConfigError')
    return { message: (e as Error).message, code: 1 };
  const detail = (e as { detail?: string } | null)?.detail;
  return { message: detail ?? (e instanceof Error ? e.message : String(e)), code: 1 };
}

/** Runs the command line `argv` (without node and the script). */
export async function main(argv: string[]): Promise<void> {
  // `fleet jobs | head`: a reader that stops early is not an error of ours.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  const program = buildProgram();
  if (argv.length === 0) {
    printErr('fleet: no command given');
    printErr(program.helpInformation().trimEnd());
    process.exitCode = 2;
    return;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    const { message, code } = failure(e);
    if (message !== null) printErr(`fleet: ${message}`);
    if (e instanceof CommanderError && code === 2 && e.code === 'commander.unknownCommand') {
      printErr(program.helpInformation().trimEnd());
    }
    process.exitCode = code;
  }
}
