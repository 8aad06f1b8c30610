/**
 * Cooperative yielding for long loops (sweeps, dependency cascades).
 *
 * better-sqlite3 is synchronous and the coordinator's awaits resolve as microtasks, so a
 * loop over thousands of jobs never lets the event loop serve I/O: measured before this
 * existed, a sweep over 3,000 blocked jobs held every request (even `/healthz`) for
 * 177 ms, and cancelling a job with 3,000 dependents for 1.75 s. A `Yielder` lets the
 * event loop run (a `setImmediate` turn: timers, I/O, and the store's group commit)
 * after every `everyItems` items or `sliceMs` of work, whichever comes first, so no
 * single stretch of such a loop holds the loop much longer than a slice.
 *
 * `performance.now()` here measures this process's own work, not domain time (which
 * always comes from the injected `Clock`).
 */

/** Items between two yields at most. */
export const YIELD_EVERY_ITEMS = 32;
/** Work between two yields at most, in ms. */
export const YIELD_SLICE_MS = 4;

const turn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

export class Yielder {
  readonly #every: number;
  readonly #sliceMs: number;
  #count = 0;
  #since = performance.now();

  constructor(everyItems = YIELD_EVERY_ITEMS, sliceMs = YIELD_SLICE_MS) {
    this.#every = everyItems;
    this.#sliceMs = sliceMs;
  }

  /** Call before each item: yields to the event loop when the batch or slice is used up. */
  async next(): Promise<void> {
    this.#count++;
    if (this.#count < this.#every && performance.now() - this.#since < this.#sliceMs) return;
    this.#count = 0;
    await turn();
    this.#since = performance.now();
  }
}
