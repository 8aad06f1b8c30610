/**
 * Keeps one lease alive and knows, by the monotonic clock, until when it is safely held.
 *
 * - Renews at a third of the lease (20 s of the default 60 s), timing each renewal from
 *   the moment it was *sent*: the server's expiry is `ttlMs` after it received the call,
 *   which is no earlier than that, so the local deadline is never later than the real
 *   one, whatever the clocks of the two machines say.
 * - The safe deadline is the lease's end minus a margin: a sixth of the lease, at least
 *   2 s, at most a third (10 s of 60 s). If no renewal has succeeded by then,
 *   `onDeadline` runs — the run kills its child before the server can hand the job to
 *   someone else.
 * - A renewal answered `FENCED` or `NOT_FOUND` calls `onFenced` at once and stops.
 * - A renewal that fails otherwise (network, 5xx) is tried again soon, while time is left.
 */
import { backoffMs, FleetApiError, type Lease, sleep } from '../../client/index.js';

export interface LeaseKeeperOptions {
  /** `ttlMs` of the claim. */
  ttlMs: number;
  /** Monotonic ms (`performance.now()`) from which `ttlMs` runs. */
  since: number;
  /** One renewal call; its options bound the attempt. */
  renew(options: { timeoutMs: number; signal: AbortSignal }): Promise<Lease>;
  onDeadline(): void;
  onFenced(error: FleetApiError): void;
  /** A renewal failed and will be tried again. */
  onRetry?(error: unknown, waitMs: number): void;
  /** Monotonic clock. @defaultValue performance.now */
  now?: () => number;
  random?: () => number;
}

/** The margin kept before a lease's end (see the module comment). */
export function safetyMargin(ttlMs: number): number {
  return Math.min(ttlMs / 3, Math.max(2000, ttlMs / 6));
}

export class LeaseKeeper {
  readonly #o: LeaseKeeperOptions;
  readonly #now: () => number;
  readonly #stop = new AbortController();
  #deadline: number;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #lost = false;
  /** The last expiry the server named (for reports). */
  expiresAt: string | null = null;

  constructor(options: LeaseKeeperOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => performance.now());
    this.#deadline = options.since + options.ttlMs - safetyMargin(options.ttlMs);
  }

  /** Monotonic time until which the lease is safely held. */
  get deadline(): number {
    return this.#deadline;
  }

  /** True once the deadline passed without a renewal, or the lease was fenced. */
  get lost(): boolean {
    return this.#lost;
  }

  start(): void {
    this.#armDeadline();
    void this.#loop(this.#o.since + this.#o.ttlMs / 3, this.#o.ttlMs);
  }

  /** Stops renewing (the run reported its end, or lost the lease). */
  stop(): void {
    this.#stop.abort();
    clearTimeout(this.#deadlineTimer);
  }

  #armDeadline(): void {
    clearTimeout(this.#deadlineTimer);
    const check = (): void => {
      if (this.#stop.signal.aborted || this.#lost) return;
      const left = this.#deadline - this.#now();
      if (left > 0) {
        this.#deadlineTimer = setTimeout(check, left);
        return;
      }
      this.#lost = true;
      this.stop();
      this.#o.onDeadline();
    };
    this.#deadlineTimer = setTimeout(check, Math.max(0, this.#deadline - this.#now()));
  }

  async #loop(firstAt: number, ttlMs: number): Promise<void> {
    let nextAt = firstAt;
    let ttl = ttlMs;
    let failures = 0;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        await sleep(Math.max(0, nextAt - this.#now()), signal);
      } catch {
        return; // stopped
      }
      const sentAt = this.#now();
      try {
        const lease = await this.#o.renew({
          timeoutMs: Math.max(1000, Math.min(ttl / 3, this.#deadline - sentAt)),
          signal,
        });
        if (signal.aborted) return;
        ttl = lease.ttlMs;
        this.expiresAt = lease.expiresAt;
        this.#deadline = sentAt + ttl - safetyMargin(ttl);
        this.#armDeadline();
        nextAt = sentAt + ttl / 3;
        failures = 0;
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof FleetApiError && (e.code === 'FENCED' || e.code === 'NOT_FOUND')) {
          this.#lost = true;
          this.stop();
          this.#o.onFenced(e);
          return;
        }
        const retryAfter = e instanceof FleetApiError ? e.retryAfterMs : null;
        const wait = Math.min(
          backoffMs(failures++, { baseMs: 500, capMs: ttl / 6, random: this.#o.random }),
          Math.max(0, this.#deadline - this.#now()),
        );
        this.#o.onRetry?.(e, Math.max(wait, Math.min(retryAfter ?? 0, ttl / 6)));
        nextAt = this.#now() + Math.max(wait, Math.min(retryAfter ?? 0, ttl / 6));
      }
    }
  }
}
