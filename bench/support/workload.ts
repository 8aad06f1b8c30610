/**
 * The synthetic workload of the benchmarks: capability sets, a priority mix, and a feed
 * of queued job documents (as `submit` would store them) or submission inputs.
 */
import type { DocumentStore } from '../../runtime/document-store.port.js';
import type { JobDoc, Priority, SubmitInput } from '../../runtime/types.js';
import { queuedJobDoc } from './job-docs.js';
import { seededRandom } from './report.js';

/** Every job of the single-set workload needs exactly these. */
export const ONE_SET: readonly (readonly string[])[] = [['git', 'lang:ts']];

/** Ten distinct sets: each job needs `git` and one of ten areas. */
export const TEN_SETS: readonly (readonly string[])[] = Array.from({ length: 10 }, (_, i) => [
  'git',
  `area:${i}`,
]);

/** A factory that can take a job of any set above. */
export const ALL_CAPABILITIES: readonly string[] = [
  ...new Set([...ONE_SET.flat(), ...TEN_SETS.flat()]),
].sort();

/** Priority mix: 5% critical, 20% high, 50% medium, 25% low. */
export function pickPriority(r: number): Priority {
  if (r < 0.05) return 'critical';
  if (r < 0.25) return 'high';
  if (r < 0.75) return 'medium';
  return 'low';
}

/** A short task body, about the size of a small real one. */
const body = (n: number): string =>
  `# Task ${n}\n\nImplement the change described in the tracker item and keep the tests green.\n`;

/**
 * Queued job documents for one product: capability sets drawn uniformly from `sets`,
 * priorities from the mix above, `seq` strictly increasing (as the coordinator's is).
 */
export class JobFeed {
  readonly productId: string;
  readonly #sets: readonly (readonly string[])[];
  readonly #random: () => number;
  #n = 0;
  #seq: number;

  constructor(productId: string, sets: readonly (readonly string[])[], seed = 1) {
    this.productId = productId;
    this.#sets = sets;
    this.#random = seededRandom(seed);
    this.#seq = Date.now() * 1000;
  }

  /** Jobs produced so far. */
  get produced(): number {
    return this.#n;
  }

  /** The next job document. */
  next(now = Date.now()): JobDoc {
    const n = ++this.#n;
    this.#seq = Math.max(this.#seq + 1, now * 1000);
    const key = `bench-${n}`;
    return queuedJobDoc({
      productId: this.productId,
      idempotencyKey: key,
      bodyMd: body(n),
      priority: pickPriority(this.#random()),
      capabilities: this.#sets[Math.floor(this.#random() * this.#sets.length)]!,
      seq: this.#seq,
      now,
      // Same length as a real sha256 hex digest; the claim path never checks it.
      contentHash: n.toString(16).padStart(64, '0'),
    });
  }

  /** The next submission input (for benchmarks that go through `submit`). */
  nextInput(): SubmitInput {
    const n = ++this.#n;
    return {
      idempotencyKey: `bench-${n}`,
      bodyMd: body(n),
      priority: pickPriority(this.#random()),
      capabilities: [...this.#sets[Math.floor(this.#random() * this.#sets.length)]!],
    };
  }

  /** Writes `count` more queued jobs straight into the store. */
  async fill(store: DocumentStore, count: number): Promise<void> {
    // Creates in small concurrent groups: fewer round trips through the microtask queue.
    const group = 256;
    for (let done = 0; done < count; ) {
      const n = Math.min(group, count - done);
      const now = Date.now();
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) writes.push(store.jobs.create(this.next(now)));
      await Promise.all(writes);
      done += n;
    }
  }
}
