/**
 * Long-poll claims park here until a job may have become claimable for their product.
 *
 * No polling loop: a parked claim sleeps on a promise. The plugin calls
 * {@link ClaimWaiters.notify} for every event of its coordinator whose `data.to` is
 * `queued` (submitted, unblocked, released, lease expired, retry due, requeued...), which
 * wakes every claim parked for that product; each then tries once more and parks again
 * if another won the job. Jobs queued by *other* processes (several coordinators on one
 * Cosmos account) raise no event here, so a parked claim also wakes after a slow safety
 * interval (`recheckMs`, about 2 s) to look again; the same covers a factory parked at
 * its seat limit whose lease ended.
 *
 * Lost wake-ups are impossible: a claimer reads the product's generation *before* it
 * tries, and {@link ClaimWaiters.wait} returns at once when a notify moved it since.
 *
 * Each parked claim holds a connection for up to 30 s, so a caller may hold only so
 * many at once ({@link ClaimWaiters.reserve}): one token cannot pin the server's
 * sockets and file descriptors by opening long polls without end.
 */

/** Why a wait ended. */
export type WaitResult = 'notified' | 'recheck' | 'aborted' | 'closed';

interface Waiter {
  settle(result: WaitResult): void;
}

export class ClaimWaiters {
  readonly #generation = new Map<string, number>();
  readonly #parked = new Map<string, Set<Waiter>>();
  /** caller → long polls it has parked now (see {@link reserve}). */
  readonly #reserved = new Map<string, number>();
  #closed = false;

  /**
   * Takes one of `caller`'s `max` long-poll slots, for the whole long poll (waits and
   * the claim attempts between them). Returns the function that gives it back (calling
   * it twice gives back one slot), or null when the caller holds `max` already.
   */
  reserve(caller: string, max: number): (() => void) | null {
    const held = this.#reserved.get(caller) ?? 0;
    if (held >= max) return null;
    this.#reserved.set(caller, held + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (this.#reserved.get(caller) ?? 1) - 1;
      if (left > 0) this.#reserved.set(caller, left);
      else this.#reserved.delete(caller);
    };
  }

  /** How many long-poll slots `caller` holds now. */
  reserved(caller: string): number {
    return this.#reserved.get(caller) ?? 0;
  }

  /** The product's notify count: read it before a claim attempt, pass it to {@link wait}. */
  generation(productId: string): number {
    return this.#generation.get(productId) ?? 0;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** How many claims are parked now (all products). */
  get size(): number {
    let n = 0;
    for (const set of this.#parked.values()) n += set.size;
    return n;
  }

  /** A job of `productId` may have become claimable: wake the product's parked claims. */
  notify(productId: string): void {
    this.#generation.set(productId, this.generation(productId) + 1);
    const set = this.#parked.get(productId);
    if (set === undefined) return;
    for (const w of [...set]) w.settle('notified');
  }

  /**
   * Parks until `productId` is notified after generation `since`, `timeoutMs` passes
   * (`recheck`), `signal` aborts (`aborted`) or {@link close} is called (`closed`).
   * Resolves at once when one of those already happened.
   */
  wait(
    productId: string,
    since: number,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<WaitResult> {
    if (this.#closed) return Promise.resolve('closed');
    if (signal.aborted) return Promise.resolve('aborted');
    if (this.generation(productId) !== since) return Promise.resolve('notified');
    return new Promise<WaitResult>((resolve) => {
      let set = this.#parked.get(productId);
      if (set === undefined) {
        set = new Set();
        this.#parked.set(productId, set);
      }
      const parked = set;
      const onAbort = (): void => waiter.settle('aborted');
      const timer = setTimeout(() => waiter.settle('recheck'), Math.max(0, timeoutMs));
      const waiter: Waiter = {
        settle: (result) => {
          if (!parked.delete(waiter)) return;
          if (parked.size === 0 && this.#parked.get(productId) === parked) {
            this.#parked.delete(productId);
          }
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          resolve(result);
        },
      };
      parked.add(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Ends every wait (`closed`) and refuses new ones: the server is shutting down. */
  close(): void {
    this.#closed = true;
    for (const set of [...this.#parked.values()]) {
      for (const w of [...set]) w.settle('closed');
    }
  }
}
