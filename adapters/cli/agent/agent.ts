/**
 * `fleet agent`: a factory. It registers and heartbeats, long-polls for jobs while a
 * seat is free (one claim in flight at a time), and works each job as a {@link JobRun}.
 *
 * - **Heartbeat** every `heartbeatMs` (10 s) and at once when something changes:
 *   capabilities, `seatLimit` (seats), `load` (running / seats), health, and a
 *   descriptor with the agent's version, host and pid. Also while draining.
 * - **Claims** back off after a network error, a 5xx or a 429 with full jitter from 1 s
 *   to 30 s, honouring `Retry-After`. 401 and 403 are fatal: the token does not work.
 * - **Spawn failures** give the job back and mark the factory `degraded`; after 3 in a
 *   row the agent stops claiming (and stays up, degraded, so an operator sees it).
 * - **Signals**: the first SIGTERM/SIGINT/SIGHUP drains — no new claims, running jobs finish
 *   (at most `drainTimeoutMs`), renewals and heartbeats go on — then exit 0. A second
 *   cancels: each command gets SIGTERM, a grace, SIGKILL, and its lease is released;
 *   then exit 1. A third exits at once (commands killed, leases left to expire).
 */
import { hostname } from 'node:os';
import {
  backoffMs,
  type Claim,
  FleetApiError,
  type FleetClient,
  sleep,
} from '../../client/index.js';
import { formatDuration } from '../duration.js';
import { describe, JobRun, type RunOutcome, type RunSettings } from './job-run.js';
import type { Reporter } from './reporter.js';

export interface AgentOptions {
  client: FleetClient;
  factoryId: string;
  capabilities: string[];
  /** Jobs at once. @defaultValue 1 */
  seats: number;
  /** Long-poll of a claim, in ms (≤ 30000). @defaultValue 20000 */
  waitMs: number;
  /** @defaultValue 10000 */
  heartbeatMs: number;
  /** Longest a drain waits for running jobs before cancelling them, in ms. */
  drainTimeoutMs: number;
  settings: RunSettings;
  report: Reporter;
  /** The agent's version, for the descriptor. */
  version: string;
  /** The server's URL, for the first report line. */
  url: string;
  random?: () => number;
}

/** Spawn failures in a row after which the agent stops claiming. */
export const MAX_SPAWN_FAILURES = 3;

type Phase = 'running' | 'draining' | 'cancelling';

export class Agent {
  readonly #o: AgentOptions;
  readonly #runs = new Map<string, JobRun>();
  #phase: Phase = 'running';
  #health: 'ok' | 'degraded' = 'ok';
  #spawnFailures = 0;
  #stoppedClaiming = false;
  #fatal: string | null = null;
  #signals = 0;
  #claimAbort: AbortController | null = null;
  /** Aborted when claiming must stop (drain or fatal error). */
  readonly #noMoreClaims = new AbortController();
  #waiters: Array<() => void> = [];
  #beating: Promise<void> | null = null;
  #beatAgain = false;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #drainTimer: NodeJS.Timeout | undefined;

  constructor(options: AgentOptions) {
    this.#o = options;
  }

  /** Jobs running now. */
  get running(): number {
    return this.#runs.size;
  }

  /** Runs until drained (or a fatal error); resolves with the exit status. */
  async run(): Promise<number> {
    const o = this.#o;
    o.report.event('started', {
      factoryId: o.factoryId,
      url: o.url,
      seats: o.seats,
      capabilities: o.capabilities,
      exec: o.settings.exec,
      version: o.version,
    });
    if (!(await this.#register())) return 1;
    this.#heartbeatTimer = setInterval(() => void this.#beat(), o.heartbeatMs);
    await this.#claimLoop();
    while (this.#runs.size > 0) await this.#changed();
    clearInterval(this.#heartbeatTimer);
    clearTimeout(this.#drainTimer);
    if (this.#phase === 'draining' && !this.#fatal) this.#o.report.event('drained');
    await this.#beating;
    await this.#beat('down').catch(() => {});
    const code = this.#fatal !== null || this.#phase === 'cancelling' ? 1 : 0;
    o.report.event('exiting', { code });
    return code;
  }

  /**
   * A SIGTERM, SIGINT or SIGHUP: drain, then cancel, then `exit` (the caller exits at once).
   */
  signal(name: string): 'drain' | 'cancel' | 'exit' {
    this.#signals++;
    if (this.#signals === 1 && this.#phase === 'running') {
      this.drain(`signal ${name}`);
      return 'drain';
    }
    if (this.#signals <= 2 && this.#phase !== 'cancelling') {
      this.cancel();
      return 'cancel';
    }
    this.killAll();
    return 'exit';
  }

  /** Stops claiming; running jobs finish (cancelled after the drain timeout). */
  drain(why: string): void {
    if (this.#phase !== 'running') return;
    this.#phase = 'draining';
    this.#noMoreClaims.abort();
    this.#claimAbort?.abort();
    this.#o.report.event('draining', {
      running: this.#runs.size,
      timeout: formatDuration(this.#o.drainTimeoutMs),
      why,
    });
    this.#drainTimer = setTimeout(() => this.cancel(), this.#o.drainTimeoutMs);
    void this.#beat();
    this.#notify();
  }

  /** Stops every command (SIGTERM, grace, SIGKILL) and releases their leases. */
  cancel(): void {
    if (this.#phase === 'running') this.drain('cancel');
    if (this.#phase === 'cancelling') return;
    this.#phase = 'cancelling';
    clearTimeout(this.#drainTimer);
    this.#o.report.event('cancelling', { running: this.#runs.size });
    for (const run of this.#runs.values()) run.cancel();
  }

  /** Kills every command's process group now (SIGKILL). Safe in an exit handler. */
  killAll(): void {
    for (const run of this.#runs.values()) run.killNow();
  }

  // -------------------------------------------------------------------------

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** The first heartbeat: retried while the server cannot be reached; false if refused. */
  async #register(): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#heartbeat('ok');
        return true;
      } catch (e) {
        if (e instanceof FleetApiError && e.status < 500 && e.status !== 429) {
          this.#fatal = describe(e);
          this.#o.report.event('error', {
            error: `the server refused the factory: ${this.#fatal}`,
          });
          this.#o.report.event('exiting', { code: 1 });
          return false;
        }
        const waitMs = this.#backoff(attempt, e);
        this.#o.report.event('retrying', { op: 'heartbeat', error: describe(e), waitMs });
        try {
          await sleep(waitMs, this.#noMoreClaims.signal);
        } catch {
          this.#o.report.event('exiting', { code: 1 });
          return false;
        }
      }
    }
  }

  #backoff(attempt: number, e: unknown): number {
    const retryAfter = e instanceof FleetApiError ? e.retryAfterMs : null;
    return backoffMs(attempt, { baseMs: 1000, capMs: 30_000, random: this.#o.random }, retryAfter);
  }

  #heartbeat(
    health: 'ok' | 'degraded' | 'down',
    call: { timeoutMs: number; retries?: number } = {
      timeoutMs: Math.max(1000, this.#o.heartbeatMs),
    },
  ): Promise<unknown> {
    const o = this.#o;
    return o.client.heartbeat(
      {
        factoryId: o.factoryId,
        capabilities: o.capabilities,
        health,
        load: this.#runs.size / o.seats,
        seatLimit: o.seats,
        heartbeatIntervalMs: o.heartbeatMs,
        descriptor: {
          agent: 'fleet-agent',
          version: o.version,
          host: hostname(),
          pid: process.pid,
          draining: this.#phase !== 'running',
          claiming: this.#phase === 'running' && !this.#stoppedClaiming,
        },
      },
      call,
    );
  }

  /** One heartbeat (never two at once; a beat asked for meanwhile follows). */
  async #beat(health?: 'down'): Promise<void> {
    if (health === 'down') {
      // The last word on the way out: one short try, the exit does not wait on it.
      await this.#heartbeat('down', { timeoutMs: 2000, retries: 0 });
      return;
    }
    if (this.#beating) {
      this.#beatAgain = true;
      return;
    }
    this.#beating = (async () => {
      do {
        this.#beatAgain = false;
        try {
          await this.#heartbeat(this.#health);
        } catch (e) {
          // The next beat is the retry; on the way out there is none to announce.
          if (this.#phase === 'running' || this.#runs.size > 0) {
            this.#o.report.event('retrying', {
              op: 'heartbeat',
              error: describe(e),
              waitMs: this.#o.heartbeatMs,
            });
          }
        }
      } while (this.#beatAgain);
    })();
    await this.#beating;
    this.#beating = null;
  }

  async #claimLoop(): Promise<void> {
    const o = this.#o;
    let failures = 0;
    while (this.#phase === 'running') {
      if (this.#stoppedClaiming || this.#runs.size >= o.seats) {
        await this.#changed();
        continue;
      }
      const abort = new AbortController();
      this.#claimAbort = abort;
      let claim: Claim | null;
      try {
        claim = await o.client.claim(
          { factoryId: o.factoryId, capabilities: o.capabilities, waitMs: o.waitMs },
          { signal: abort.signal },
        );
        failures = 0;
      } catch (e) {
        if (abort.signal.aborted) continue;
        if (e instanceof FleetApiError && (e.status === 401 || e.status === 403)) {
          this.#fatal = describe(e);
          this.#o.report.event('error', { error: `claims are refused: ${this.#fatal}` });
          this.drain('fatal error');
          return;
        }
        const waitMs = this.#backoff(failures++, e);
        o.report.event('retrying', { op: 'claim', error: describe(e), waitMs });
        try {
          await sleep(waitMs, this.#noMoreClaims.signal);
        } catch {
          return;
        }
        continue;
      } finally {
        this.#claimAbort = null;
      }
      const receivedAt = performance.now();
      if (!claim) continue;
      if (this.#phase !== 'running') {
        // Granted as the drain began: give it straight back.
        await o.client
          .releaseLease(claim.job.id, {
            factoryId: o.factoryId,
            leaseEpoch: claim.lease.leaseEpoch,
            reason: 'agent_stopping',
          })
          .catch(() => {});
        return;
      }
      this.#start(claim, receivedAt);
    }
  }

  #start(claim: Claim, receivedAt: number): void {
    const o = this.#o;
    const run = new JobRun(
      {
        client: o.client,
        factoryId: o.factoryId,
        settings: o.settings,
        report: o.report,
        ...(o.random ? { random: o.random } : {}),
      },
      claim,
      receivedAt,
    );
    this.#runs.set(run.jobId, run);
    void this.#beat();
    void run.run().then((outcome) => this.#ended(run, outcome));
  }

  #ended(run: JobRun, outcome: RunOutcome): void {
    this.#runs.delete(run.jobId);
    if (outcome === 'spawn_failed') {
      this.#spawnFailures++;
      this.#health = 'degraded';
      if (this.#spawnFailures >= MAX_SPAWN_FAILURES && !this.#stoppedClaiming) {
        this.#stoppedClaiming = true;
        this.#o.report.event('stopped_claiming', { failures: this.#spawnFailures });
      }
    } else if (run.spawned) {
      this.#spawnFailures = 0;
      if (!this.#stoppedClaiming) this.#health = 'ok';
    }
    void this.#beat();
    this.#notify();
  }
}
