/**
 * One claimed job, from the claim to the last report: the agent's per-job protocol.
 *
 * 1. PATCH to `building` first: it proves the lease before anything runs.
 * 2. Spawn the command in its own process group (`job-process.ts`) with the job body on
 *    stdin and `FLEET_JOB_ID`, `FLEET_RUN_ID`, `FLEET_LEASE_EPOCH`, `FLEET_ATTEMPT` and
 *    `FLEET_CHECKPOINT` (the previous attempt's checkpoint, JSON) in its environment —
 *    never the token. Its fd 3 lines (`child-messages.ts`) become stage moves,
 *    checkpoints, insights, a result or a failure; this run is the only writer to Fleet.
 * 3. Keep the lease (`lease-keeper.ts`): renew at a third of it; if no renewal succeeded
 *    by its end minus a margin, kill the group before the server can hand the job on.
 * 4. Any write answered `FENCED` or `NOT_FOUND` kills the whole group at once (SIGKILL,
 *    no grace) and stops every write of this epoch.
 * 5. Report the end: exit 0 → the remaining stages to `shipped` with the result, the
 *    last insights (and files and lines changed, from git) and the log's pointer; exit
 *    75 or a `fail` of class transient → `failed` (transient); another status →
 *    `agent_exit` with the stderr tail; a signal the agent did not send (or the shell's
 *    status 128 + N, which reports one) → `agent_signal`; `--timeout` → SIGTERM the group, grace, SIGKILL, `timeout`. A
 *    command that could not be started (spawn error, or the shell's 126/127 before the
 *    child said anything) gives the job back instead of failing it: no attempt burnt.
 *
 * Writes go one at a time, in order. A write that fails without an answer is resolved
 * before it is sent again: progress calls carry a per-run `seq` (the server applies each
 * once); a stage move re-reads the job (and, for the final report, its run) to learn
 * whether it was applied. Answers 429 and 5xx are retried with backoff. Every retry
 * stops when the lease is gone.
 *
 * Insights are coalesced to at most one progress call per `progressIntervalMs` (15 s);
 * a checkpoint is sent at once, with the insights gathered so far; the rest goes with
 * the final report. stdout and stderr go to a log file per (job, epoch), flushed before
 * the final report (and after a fenced kill), whose pointer is recorded as an artifact.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type {
  Artifact,
  Checkpoint,
  ErrorInfo,
  Insights,
  PatchTarget,
} from '../../../runtime/index.js';
import {
  backoffMs,
  type Claim,
  FleetApiError,
  type FleetClient,
  FleetNetworkError,
  type Job,
  sleep,
} from '../../client/index.js';
import { formatDuration } from '../duration.js';
import { type ChildStage, parseChildLine } from './child-messages.js';
import { diffStats, gitBase } from './git-stats.js';
import { type ChildExit, type JobProcess, startJobProcess } from './job-process.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { Reporter } from './reporter.js';
import { type TranscriptFormat, transcriptReader } from './transcripts.js';
import { UsageMeter } from './usage-meter.js';

/** What every run of one agent shares. */
export interface RunSettings {
  /** The command (run by `/bin/sh -c`). */
  exec: string;
  /** Its working directory. */
  workdir: string;
  /** Longest a command may run, in ms; null = no limit. */
  timeoutMs: number | null;
  /** Between SIGTERM and SIGKILL, in ms. @defaultValue 10000 */
  killGraceMs: number;
  insightsFrom: TranscriptFormat | null;
  /** Folder of the per-(job, epoch) log files. */
  logDir: string;
  /** Insights are sent at most this often, in ms. @defaultValue 15000 */
  progressIntervalMs: number;
  /** The child's environment before the job's variables (the agent's, without the token). */
  env: NodeJS.ProcessEnv;
}

export interface RunDeps {
  client: FleetClient;
  factoryId: string;
  settings: RunSettings;
  report: Reporter;
  random?: () => number;
}

/** How a run ended. */
export type RunOutcome =
  | 'shipped'
  | 'failed'
  | 'released'
  | 'spawn_failed'
  /** A write was answered FENCED (or NOT_FOUND): the lease is someone else's. */
  | 'fenced'
  /** The lease could not be kept or reported on (unreachable server). */
  | 'lost';

/** Moves of the lifecycle a holder makes, in order. */
const ORDER = ['assigned', 'building', 'review', 'testing', 'shipped'] as const;
type Stage = (typeof ORDER)[number];

/** The PATCHes from `from` to `to` (review and testing go back to building directly). */
export function movesTo(from: string, to: PatchTarget): PatchTarget[] {
  if (to === 'failed') return ['failed'];
  const i = ORDER.indexOf(from as Stage);
  const j = ORDER.indexOf(to);
  if (i < 0 || i === j) return [];
  if (j < i) return to === 'building' ? ['building'] : [];
  return ORDER.slice(i + 1, j + 1) as PatchTarget[];
}

const STDERR_TAIL = 4000;
/** Tries of the give-back once the lease passed its safe deadline. */
const AFTER_LOSS_ATTEMPTS = 3;
/** The write could not be made: the lease is gone (fenced, or past its safe deadline). */
const GONE = Symbol('gone');
type Written<T> = T | typeof GONE;

export class JobRun {
  readonly jobId: string;
  readonly leaseEpoch: number;
  readonly runId: string;
  readonly attempt: number;
  /** True once the command was started. */
  spawned = false;
  readonly #d: RunDeps;
  readonly #claim: Claim;
  readonly #keeper: LeaseKeeper;
  readonly #meter = new UsageMeter();
  /** Aborted when the lease is someone else's (fenced): ends every wait and retry. */
  readonly #gone = new AbortController();
  /**
   * Aborted when the lease passed its safe deadline unrenewed: writes stop retrying;
   * only the give-back is tried, a few times (it may still be ours, or answer FENCED).
   */
  readonly #leaseLost = new AbortController();
  #stage: string;
  #queue: Promise<unknown> = Promise.resolve();
  #seq = 0;
  #process: JobProcess | null = null;
  #killedBy: 'lease' | 'fenced' | 'timeout' | 'cancel' | null = null;
  #cancelled = false;
  #fenced: { reason: string | undefined; leaseEpoch: unknown } | null = null;
  #pendingCheckpoint: Checkpoint | undefined;
  #result: Record<string, unknown> | undefined;
  #fail: ErrorInfo | undefined;
  #spokeOnFd3 = false;
  #stderrTail = '';
  #stdoutRest = '';
  #log: WriteStream | null = null;
  #logPath = '';
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(deps: RunDeps, claim: Claim, receivedAt: number) {
    this.#d = deps;
    this.#claim = claim;
    this.jobId = claim.job.id;
    this.leaseEpoch = claim.lease.leaseEpoch;
    this.runId = claim.run.id;
    this.attempt = claim.run.attempt;
    this.#stage = claim.job.stage;
    // The answer's transit time is within the lease's safety margin.
    this.#keeper = new LeaseKeeper({
      ttlMs: claim.lease.ttlMs,
      since: receivedAt,
      renew: ({ timeoutMs, signal }) =>
        deps.client.renewLease(this.jobId, this.#me(), { timeoutMs, signal, retries: 0 }),
      onDeadline: () => this.#onDeadline(),
      onFenced: (e) => this.#onFenced(e),
      onRetry: (e, waitMs) => this.#event('retrying', { op: 'renew', error: describe(e), waitMs }),
      ...(deps.random ? { random: deps.random } : {}),
    });
  }

  /** Works the job to its end; never throws. */
  async run(): Promise<RunOutcome> {
    this.#keeper.start();
    try {
      return await this.#run();
    } catch (e) {
      this.#event('error', { error: describe(e) });
      this.#kill('SIGKILL');
      return 'lost';
    } finally {
      this.#keeper.stop();
      for (const t of this.#timers) clearTimeout(t);
      await this.#closeLog();
    }
  }

  /** Second signal of a drain: stop the command (SIGTERM, grace, SIGKILL), then give the job back. */
  cancel(): void {
    this.#cancelled = true;
    if (this.#process && this.#killedBy === null) {
      this.#killedBy = 'cancel';
      this.#terminate();
    }
  }

  /** Kills the command's group now (the agent is exiting). */
  killNow(): void {
    this.#kill('SIGKILL');
  }

  #me(): { factoryId: string; leaseEpoch: number } {
    return { factoryId: this.#d.factoryId, leaseEpoch: this.leaseEpoch };
  }

  #event(event: string, fields: Record<string, unknown> = {}): void {
    this.#d.report.event(event, { jobId: this.jobId, ...fields });
  }

  async #run(): Promise<RunOutcome> {
    const { settings } = this.#d;
    this.#event('claimed', {
      attempt: this.attempt,
      leaseEpoch: this.leaseEpoch,
      runId: this.runId,
      ttlMs: this.#claim.lease.ttlMs,
    });
    if ((await this.#moveTo('building')) === GONE) return this.#goneOutcome();
    if (this.#cancelled) return this.#giveBack('agent_stopping');

    mkdirSync(settings.logDir, { recursive: true });
    this.#logPath = join(settings.logDir, `${this.jobId}.e${this.leaseEpoch}.log`);
    this.#log = createWriteStream(this.#logPath, { flags: 'a' });
    const base = await gitBase(settings.workdir);
    const reader = settings.insightsFrom
      ? transcriptReader(settings.insightsFrom, this.#meter)
      : null;
    const job = this.#claim.job;
    const started = await startJobProcess({
      command: settings.exec,
      cwd: settings.workdir,
      env: {
        ...settings.env,
        FLEET_JOB_ID: this.jobId,
        FLEET_RUN_ID: this.runId,
        FLEET_LEASE_EPOCH: String(this.leaseEpoch),
        FLEET_ATTEMPT: String(this.attempt),
        FLEET_CHECKPOINT: job.checkpoint ? JSON.stringify(job.checkpoint) : '',
      },
      stdin: job.bodyMd,
      onStdout: (chunk) => {
        this.#log?.write(chunk);
        if (reader) this.#lines(chunk, (line) => reader.line(line));
      },
      onStderr: (chunk) => {
        this.#log?.write(chunk);
        this.#stderrTail = (this.#stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL);
      },
      onMessageLine: (line) => this.#onChildLine(line),
      onKilledAfterGrace: () => this.#event('killed', { signal: 'SIGKILL', why: 'grace_ended' }),
    });
    if (!started.ok) {
      this.#event('spawn_failed', { error: started.error.message });
      await this.#closeLog();
      return this.#giveBack('spawn_failed', 'spawn_failed');
    }
    this.spawned = true;
    this.#process = started.process;
    this.#event('spawned', { pid: started.process.pid, log: this.#logPath });
    // A lease lost, or a cancel, while the command was being started.
    if (this.#keeper.lost) this.#kill('SIGKILL');
    else if (this.#cancelled) this.cancel();
    if (settings.timeoutMs !== null) {
      const after = settings.timeoutMs;
      this.#timers.push(
        setTimeout(() => {
          if (this.#killedBy !== null) return;
          this.#killedBy = 'timeout';
          this.#event('timeout', { after: formatDuration(after) });
          this.#terminate();
        }, after),
      );
    }
    const flusher = setInterval(() => {
      if (this.#meter.pending) this.#enqueue(() => this.#sendProgress());
    }, settings.progressIntervalMs);
    const exit = await started.process.exited;
    clearInterval(flusher);
    this.#event('child_exited', { code: exit.code, signal: exit.signal });
    await this.#queue;
    await this.#closeLog();
    return this.#finish(exit, base);
  }

  /** The end of a run whose command has exited. */
  async #finish(exit: ChildExit, base: string | null): Promise<RunOutcome> {
    if (this.#fenced) return 'fenced';
    const artifacts = await this.#logArtifact();
    if (this.#killedBy === 'lease') return this.#giveBack('lease_deadline', 'released', artifacts);
    if (this.#killedBy === 'cancel') return this.#giveBack('agent_stopping', 'released', artifacts);
    if ((exit.code === 126 || exit.code === 127) && !this.#spokeOnFd3 && this.#killedBy === null) {
      this.#event('spawn_failed', {
        error: `the shell could not run the command (status ${exit.code}): ${lastLine(this.#stderrTail)}`,
      });
      return this.#giveBack('spawn_failed', 'spawn_failed', artifacts);
    }
    if (base) {
      const changed = await diffStats(this.#d.settings.workdir, base);
      if (changed) this.#meter.add(changed);
    }
    const error = this.#failure(exit);
    const insights = this.#meter.take();
    const extra = {
      ...(insights ? { insights } : {}),
      ...(this.#pendingCheckpoint ? { checkpoint: this.#pendingCheckpoint } : {}),
      artifacts,
    };
    if (!error) {
      const r = await this.#moveTo('shipped', {
        ...extra,
        ...(this.#result ? { result: this.#result } : {}),
      });
      if (r === GONE) return this.#goneOutcome();
      this.#event('shipped', { insights: this.#meter.total });
      return 'shipped';
    }
    const r = await this.#moveTo('failed', { ...extra, error });
    if (r === GONE) return this.#goneOutcome();
    this.#event('failed', { class: error.class, message: error.message });
    return 'failed';
  }

  /** The failure to report for this exit, or null for success. */
  #failure(exit: ChildExit): ErrorInfo | null {
    const tail = this.#stderrTail.trim();
    const withTail = (s: string): string => (tail ? `${s}\n${tail}` : s);
    if (this.#killedBy === 'timeout') {
      return {
        class: 'timeout',
        message: withTail(`ran longer than ${formatDuration(this.#d.settings.timeoutMs ?? 0)}`),
      };
    }
    if (this.#fail) return this.#fail;
    const signal = exit.signal ?? signalOfShellStatus(exit.code);
    if (signal) return { class: 'agent_signal', message: withTail(`killed by ${signal}`) };
    if (exit.code === 0) return null;
    if (exit.code === 75) {
      return { class: 'transient', message: withTail('exited with status 75 (temporary failure)') };
    }
    return { class: 'agent_exit', message: withTail(`exited with status ${exit.code}`) };
  }

  #goneOutcome(): RunOutcome {
    return this.#fenced ? 'fenced' : 'lost';
  }

  // -------------------------------------------------------------------------
  // The child's messages
  // -------------------------------------------------------------------------

  #onChildLine(line: string): void {
    const parsed = parseChildLine(line);
    if (parsed === null) return;
    if (!parsed.ok) {
      this.#event('child_message', { error: parsed.error });
      return;
    }
    this.#spokeOnFd3 = true;
    const m = parsed.message;
    if (m.insights) {
      const { model, estimated: _estimated, ...increments } = m.insights;
      this.#meter.add(increments, model);
    }
    if (m.result) this.#result = m.result;
    if (m.fail) this.#fail = m.fail;
    if (m.checkpoint) {
      this.#pendingCheckpoint = { ...this.#pendingCheckpoint, ...m.checkpoint };
      this.#enqueue(() => this.#sendProgress());
    }
    if (m.stage) {
      const stage: ChildStage = m.stage;
      this.#enqueue(() => this.#moveTo(stage));
    }
  }

  #lines(chunk: Buffer, each: (line: string) => void): void {
    const text = this.#stdoutRest + chunk.toString('utf8');
    const lines = text.split('\n');
    this.#stdoutRest = lines.pop() ?? '';
    if (this.#stdoutRest.length > 1_000_000) this.#stdoutRest = ''; // not a line protocol
    for (const line of lines) each(line);
  }

  // -------------------------------------------------------------------------
  // Writes
  // -------------------------------------------------------------------------

  #enqueue(task: () => Promise<unknown>): void {
    this.#queue = this.#queue.then(task).catch((e: unknown) => {
      this.#event('error', { error: describe(e) });
    });
  }

  /**
   * Sends `send` until it is answered, the lease is gone, or it fails for good (thrown).
   * Without an answer: `resolve` says whether it was applied (`applied`), must be sent
   * again (`resend`), or found the lease gone (`gone`); without `resolve` it is resent.
   */
  async #write<T>(
    op: string,
    send: () => Promise<T>,
    resolve?: () => Promise<{ applied: T } | 'resend' | 'gone'>,
    afterLoss = false,
  ): Promise<Written<T>> {
    const stop = afterLoss
      ? this.#gone.signal
      : AbortSignal.any([this.#gone.signal, this.#leaseLost.signal]);
    for (let attempt = 0; ; attempt++) {
      if (this.#fenced || stop.aborted) return GONE;
      if (this.#leaseLost.signal.aborted && attempt >= AFTER_LOSS_ATTEMPTS) return GONE;
      let retryAfter: number | null = null;
      try {
        return await send();
      } catch (e) {
        if (e instanceof FleetApiError && (e.code === 'FENCED' || e.code === 'NOT_FOUND')) {
          this.#onFenced(e);
          return GONE;
        }
        if (e instanceof FleetApiError && (e.status === 429 || e.status >= 500)) {
          retryAfter = e.retryAfterMs;
        } else if (e instanceof FleetNetworkError) {
          if (e.maybeSent && resolve) {
            const r = await resolve().catch(() => 'resend' as const);
            if (r === 'gone') return GONE;
            if (r !== 'resend') {
              this.#event('resolved', { op, applied: true, error: describe(e) });
              return r.applied;
            }
          }
        } else {
          throw e;
        }
        const waitMs = backoffMs(
          attempt,
          { baseMs: 1000, capMs: 30_000, random: this.#d.random },
          retryAfter,
        );
        this.#event('retrying', { op, error: describe(e), waitMs });
        try {
          await sleep(waitMs, stop);
        } catch {
          return GONE;
        }
      }
    }
  }

  /** Walks the lifecycle to `to`; the last PATCH carries `extra`. */
  async #moveTo(
    to: PatchTarget,
    extra: {
      result?: Record<string, unknown>;
      error?: ErrorInfo;
      insights?: Insights;
      checkpoint?: Checkpoint;
      artifacts?: Artifact[];
    } = {},
  ): Promise<Written<Job | null>> {
    let job: Job | null = null;
    for (let round = 0; round < 2; round++) {
      let invalid = false;
      for (const step of movesTo(this.#stage, to)) {
        const body = { ...this.#me(), to: step, ...(step === to ? extra : {}) };
        try {
          const r = await this.#write(
            `PATCH ${step}`,
            () => this.#d.client.transition(this.jobId, body),
            () => this.#resolveMove(step),
          );
          if (r === GONE) return GONE;
          job = r;
        } catch (e) {
          if (!(e instanceof FleetApiError && e.code === 'INVALID_TRANSITION') || round > 0)
            throw e;
          invalid = true;
          break;
        }
        this.#stage = step;
        if (step !== 'shipped' && step !== 'failed') this.#event('stage', { stage: step });
      }
      if (!invalid) return job;
      // Our idea of the stage was wrong: learn it, then walk again once.
      const now = await this.#d.client.getJob(this.jobId);
      if (now.leaseEpoch !== this.leaseEpoch || now.holderFactoryId !== this.#d.factoryId) {
        this.#markGone({ reason: 'superseded', leaseEpoch: now.leaseEpoch });
        return GONE;
      }
      this.#stage = now.stage;
    }
    return job;
  }

  /** After a PATCH got no answer: was it applied? */
  async #resolveMove(to: PatchTarget): Promise<{ applied: Job | null } | 'resend' | 'gone'> {
    const job = await this.#d.client.getJob(this.jobId);
    if (job.leaseEpoch === this.leaseEpoch && job.holderFactoryId === this.#d.factoryId) {
      return job.stage === to ? { applied: job } : 'resend';
    }
    if (to === 'shipped' || to === 'failed') {
      // A final report ends the epoch: our run's exit says whether it was ours.
      const runs = await this.#d.client.listRuns(this.jobId, { limit: 500 });
      const run = runs.items.find((r) => r.id === this.runId);
      if (run?.exit === to) return { applied: job };
      this.#markGone({ reason: run?.exit ?? 'superseded', leaseEpoch: job.leaseEpoch });
      return 'gone';
    }
    this.#markGone({ reason: 'superseded', leaseEpoch: job.leaseEpoch });
    return 'gone';
  }

  /** A progress call (seq'd, so resending is safe) with whatever is waiting. */
  async #sendProgress(artifacts?: Artifact[]): Promise<void> {
    const insights = this.#meter.take();
    const checkpoint = this.#pendingCheckpoint;
    if (!insights && !checkpoint && !artifacts) return;
    this.#pendingCheckpoint = undefined;
    const seq = ++this.#seq;
    const body = {
      ...this.#me(),
      seq,
      ...(insights ? { insights } : {}),
      ...(checkpoint ? { checkpoint } : {}),
      ...(artifacts ? { artifacts } : {}),
    };
    const r = await this.#write('progress', () => this.#d.client.recordProgress(this.jobId, body));
    if (r !== GONE) this.#event('progress', { seq, checkpoint: checkpoint !== undefined });
  }

  /** Gives the job back (after reporting what is waiting); not a failed attempt. */
  async #giveBack(
    reason: string,
    outcome: RunOutcome = 'released',
    artifacts?: Artifact[],
  ): Promise<RunOutcome> {
    if (this.#fenced) return 'fenced';
    if (!this.#leaseLost.signal.aborted) await this.#sendProgress(artifacts);
    const r = await this.#write(
      'release',
      () => this.#d.client.releaseLease(this.jobId, { ...this.#me(), reason }),
      async () => {
        const job = await this.#d.client.getJob(this.jobId);
        const mine =
          job.leaseEpoch === this.leaseEpoch && job.holderFactoryId === this.#d.factoryId;
        return mine ? 'resend' : { applied: job };
      },
      true,
    );
    if (r === GONE) return this.#goneOutcome();
    this.#event('released', { reason });
    return outcome;
  }

  // -------------------------------------------------------------------------
  // Losing the lease, stopping the command
  // -------------------------------------------------------------------------

  #onFenced(e: FleetApiError): void {
    this.#markGone({
      reason: e.fenceReason ?? (e.code === 'NOT_FOUND' ? 'not_found' : undefined),
      leaseEpoch: e.problem.leaseEpoch,
    });
  }

  /** The lease is someone else's: kill the group now, write nothing more. */
  #markGone(why: { reason: string | undefined; leaseEpoch: unknown }): void {
    if (this.#fenced) return;
    this.#fenced = why;
    this.#keeper.stop();
    this.#gone.abort();
    if (this.#process) {
      this.#killedBy ??= 'fenced';
      this.#kill('SIGKILL');
    }
    this.#event('fenced', { reason: why.reason, leaseEpoch: why.leaseEpoch });
  }

  /** No renewal by the safe deadline: kill the group before the lease can be handed on. */
  #onDeadline(): void {
    if (this.#fenced) return;
    this.#leaseLost.abort();
    this.#killedBy ??= 'lease';
    this.#kill('SIGKILL');
    this.#event('lease_deadline', {
      expiresAt: this.#keeper.expiresAt ?? this.#claim.lease.expiresAt,
    });
  }

  #kill(signal: NodeJS.Signals): void {
    this.#process?.killGroup(signal);
  }

  /** SIGTERM to the group, SIGKILL to what is left of it after the grace. */
  #terminate(): void {
    this.#process?.terminate(this.#d.settings.killGraceMs);
  }

  // -------------------------------------------------------------------------
  // The log
  // -------------------------------------------------------------------------

  async #closeLog(): Promise<void> {
    const log = this.#log;
    if (!log) return;
    this.#log = null;
    await new Promise<void>((resolve) => log.end(() => resolve()));
  }

  /** The log file's pointer (size and sha256 of what was written). */
  async #logArtifact(): Promise<Artifact[]> {
    if (!this.#logPath) return [];
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      for await (const chunk of createReadStream(this.#logPath)) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
    } catch {
      return [];
    }
    return [
      {
        name: 'log',
        uri: pathToFileURL(this.#logPath).href,
        contentType: 'text/plain',
        bytes,
        sha256: hash.digest('hex'),
      },
    ];
  }
}

/**
 * The signal behind a shell's exit status 128 + N: `/bin/sh -c` runs the command as its
 * own child, so a command killed by signal N shows as the shell exiting with 128 + N.
 */
export function signalOfShellStatus(code: number | null): string | null {
  if (code === null || code <= 128 || code > 128 + 64) return null;
  const n = code - 128;
  const name = Object.entries(constants.signals).find(([, v]) => v === n)?.[0];
  return name ?? `signal ${n}`;
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop()?.slice(0, 300) ?? '';
}

/** A short description of a failure, for report lines. */
export function describe(e: unknown): string {
  if (e instanceof FleetApiError) return `${e.code}: ${e.detail}`;
  if (e instanceof Error) return e.message;
  return String(e);
}
