/**
 * A mailbox per key (one per product): tasks with the same key run one at a time, in
 * arrival order; different keys run independently. This is the in-process coordinator
 * actor of DESIGN.md: claims of one product do not fight each other over etags, and a
 * store can commit the writes of queued tasks together. Across processes, etags decide.
 */
export class Mailboxes {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Runs `task` after every task queued before it under `key`; resolves with its result. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const next = prev.then(task, task);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }

  /** Resolves when every task queued so far has finished. */
  async drain(): Promise<void> {
    await Promise.all([...this.#tails.values()]);
  }
}
