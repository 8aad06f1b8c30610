/**
 * Deep SQLite queues, fast: a queue of queued jobs is written once into a template
 * file (the store opened with `synchronous=NORMAL`, documents built as `submit` builds
 * them — see `job-docs.ts` — created through the store's own `jobs.create` in large
 * concurrent groups, which its group commit turns into one transaction each), then
 * every measurement gets a byte copy of the template, opened again with the setting it
 * measures (`FULL`). Filling 1M jobs once and copying it beats filling it per section.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../adapters/store/sqlite/index.js';
import { JobFeed, TEN_SETS } from './workload.js';

export interface QueueTemplate {
  /** The template file (closed: checkpointed, no WAL beside it). */
  path: string;
  /** Queued jobs in it. */
  jobs: number;
  /** Seconds it took to fill. */
  fillSec: number;
}

/** A temp folder, removed by the returned function. */
export function benchDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Writes `jobs` queued jobs of `productId` (capability sets from `sets`) into a new
 * SQLite file at `path`, with `synchronous=NORMAL` (a fill is not what is measured).
 */
export async function fillQueueFile(
  path: string,
  productId: string,
  sets: readonly (readonly string[])[],
  jobs: number,
  seed = 1,
): Promise<QueueTemplate> {
  const started = performance.now();
  const store = openSqliteStore({ path, synchronous: 'NORMAL' });
  try {
    const feed = new JobFeed(productId, sets, seed);
    const group = 4_096;
    for (let done = 0; done < jobs; ) {
      const n = Math.min(group, jobs - done);
      const now = Date.now();
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) writes.push(store.jobs.create(feed.next(now)));
      await Promise.all(writes);
      done += n;
    }
    await store.sync();
  } finally {
    await store.close();
  }
  return { path, jobs, fillSec: (performance.now() - started) / 1000 };
}

/** A byte copy of the template at `to` (and its WAL, if one was left). */
export function copyQueueFile(template: QueueTemplate, to: string): void {
  copyFileSync(template.path, to);
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(template.path + suffix)) copyFileSync(template.path + suffix, to + suffix);
  }
}

/** The product and capability sets of every shared queue (factories hold `ALL_CAPABILITIES`). */
export const QUEUE_PRODUCT = 'bench';
export const QUEUE_SETS = TEN_SETS;

/**
 * One template per queue depth, filled on first use and shared by every section of a
 * run: `depth + headroom` jobs, so a measurement that takes at most `headroom` of them
 * leaves at least `depth` queued behind it.
 */
export class QueueTemplates {
  readonly headroom: number;
  readonly #dir = benchDir('fleet-bench-queues-');
  readonly #byDepth = new Map<number, Promise<QueueTemplate>>();
  #copies = 0;

  constructor(headroom: number) {
    this.headroom = headroom;
  }

  /** The template of `depth` (filled now if this is its first use). */
  template(depth: number): Promise<QueueTemplate> {
    let t = this.#byDepth.get(depth);
    if (t === undefined) {
      t = fillQueueFile(
        join(this.#dir.dir, `queue-${depth}.db`),
        QUEUE_PRODUCT,
        QUEUE_SETS,
        depth + this.headroom,
      );
      this.#byDepth.set(depth, t);
    }
    return t;
  }

  /**
   * A fresh copy of the template of `depth` in `dir`, for a section that takes at most
   * `take` jobs (refused when that is more than the headroom). Returns its path.
   */
  async copy(depth: number, take: number, dir: string): Promise<string> {
    if (take > this.headroom) {
      throw new RangeError(`a section takes ${take} jobs; the queues have ${this.headroom} spare`);
    }
    const template = await this.template(depth);
    const to = join(dir, `fleet-${depth}-${++this.#copies}.db`);
    copyQueueFile(template, to);
    return to;
  }

  /** Seconds spent filling each depth so far. */
  async fills(): Promise<Array<{ depth: number; jobs: number; fillSec: number }>> {
    const out = [];
    for (const [depth, t] of this.#byDepth) {
      const { jobs, fillSec } = await t;
      out.push({ depth, jobs, fillSec });
    }
    return out;
  }

  remove(): void {
    this.#dir.remove();
  }
}
