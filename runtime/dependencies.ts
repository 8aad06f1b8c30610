/**
 * Dependencies between jobs as the coordinator acts on them: are a job's deps met, would
 * new edges close a cycle, and the cascade that re-evaluates a job's dependents when it
 * reaches `testing`, leaves it, ships or dies.
 *
 * Every check reads index columns (`JobLink`s: stage, deps, mode), never a dep's
 * document, which may hold a 1 MiB body; one store call answers many ids (a query on
 * Cosmos DB, so a level of a dependency graph costs one request). A cascade looks at
 * each slice of dependents with one call per product, reads and writes only those whose
 * status calls for a change, yields to the event loop as it goes, and isolates each
 * dependent: one that cannot be processed is logged and left to the sweep's repair.
 */
import type { Core } from './core.js';
import { type DepsStatus, evaluateDeps, findCycle } from './deps.js';
import type { JobLink, Stored } from './document-store.port.js';
import { fail, isFleetError, ok, type Result } from './errors.js';
import type { JobDoc, Stage } from './types.js';
import { Yielder } from './yielder.js';

/** Ids asked of `jobs.links` per call at most. */
const LINKS_PER_CALL = 500;
/** Dependents looked at per store call of a cascade. */
const CASCADE_SLICE = 256;

/** The machine events a deps status can call for. */
export type DepsEvent = 'DEPENDENCY_FAILED' | 'DEPS_MET' | 'DEPS_UNMET';

export class Dependencies {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
  }

  /** Links of the product's jobs among `ids`, by id, from index columns. */
  async linksOf(productId: string, ids: readonly string[]): Promise<Map<string, JobLink>> {
    const out = new Map<string, JobLink>();
    const unique = [...new Set(ids)];
    for (let i = 0; i < unique.length; i += LINKS_PER_CALL) {
      const slice = unique.slice(i, i + LINKS_PER_CALL);
      for (const link of await this.#core.store.jobs.links(productId, slice)) {
        out.set(link.id, link);
      }
    }
    return out;
  }

  /** The deps of each job among `ids` (absent: no such job), from index columns. */
  async depsOfMany(
    productId: string,
    ids: readonly string[],
  ): Promise<Map<string, readonly string[]>> {
    const links = await this.linksOf(productId, ids);
    return new Map([...links].map(([id, l]) => [id, l.deps]));
  }

  /** Whether `deps` are met, from their stages (index columns, never the documents). */
  async status(
    productId: string,
    deps: readonly string[],
    mode: 'hard' | 'soft',
  ): Promise<DepsStatus> {
    if (deps.length === 0) return { met: true, failedDep: null, missing: [] };
    const links = await this.linksOf(productId, deps);
    return evaluateDeps(deps, mode, (id) => links.get(id));
  }

  /**
   * Deps must exist in the product and must not lead back to `id`; a parent must be
   * another job of the product. Read from index columns, never the documents.
   */
  async check(
    productId: string,
    id: string,
    deps: readonly string[],
    parentId: string | null = null,
  ): Promise<Result<true>> {
    if (parentId !== null) {
      if (parentId === id) return fail('VALIDATION', 'parentId: a job cannot be its own parent');
      const parent = await this.linksOf(productId, [parentId]);
      if (!parent.has(parentId)) {
        return fail('UNKNOWN_DEPENDENCY', `parentId names no job of this product: ${parentId}`, {
          unknown: [parentId],
        });
      }
    }
    const others = deps.filter((d) => d !== id);
    const found = await this.linksOf(productId, others);
    const missing = others.filter((d) => !found.has(d));
    if (missing.length > 0) {
      return fail('UNKNOWN_DEPENDENCY', `no job of this product has id ${missing.join(', ')}`, {
        unknown: missing,
      });
    }
    const cycle = await this.cycle(productId, id, deps);
    if (cycle)
      return fail('DEPENDENCY_CYCLE', `deps would form a cycle: ${cycle.join(' → ')}`, { cycle });
    return ok(true);
  }

  /** The cycle that edges `id → deps` would close now, or null. */
  cycle(productId: string, id: string, deps: readonly string[]): Promise<string[] | null> {
    return findCycle(id, deps, (ids) => this.depsOfMany(productId, ids));
  }

  /** The machine event, if any, that a job's deps status calls for in `stage`. */
  event(stage: Stage, status: DepsStatus): DepsEvent | null {
    if (stage === 'shipped' || stage === 'dead_letter') return null;
    if (status.failedDep) return 'DEPENDENCY_FAILED';
    if (stage === 'blocked' && status.met) return 'DEPS_MET';
    if (stage === 'queued' && !status.met) return 'DEPS_UNMET';
    return null;
  }

  /**
   * The jobs among `jobs` whose deps status calls for a change, found with one store
   * call per product (and per {@link LINKS_PER_CALL} deps): the cheap first look of the
   * blocked-jobs repair and of a dependents cascade.
   */
  async needingReevaluation(jobs: readonly JobLink[]): Promise<JobLink[]> {
    const byProduct = new Map<string, JobLink[]>();
    for (const j of jobs) {
      if (j.stage === 'shipped' || j.stage === 'dead_letter') continue;
      const list = byProduct.get(j.productId);
      if (list) list.push(j);
      else byProduct.set(j.productId, [j]);
    }
    const out: JobLink[] = [];
    for (const [productId, list] of byProduct) {
      const deps = await this.linksOf(
        productId,
        list.flatMap((j) => j.deps),
      );
      for (const j of list) {
        const status = evaluateDeps(j.deps, j.depsMode, (id) => deps.get(id));
        if (this.event(j.stage, status) !== null) out.push(j);
      }
    }
    return out;
  }

  /**
   * Re-evaluates one job against its deps: a dead dep sends it to `dead_letter`
   * (reason `dependency_failed`), met deps unblock it, unmet deps block a queued job.
   * Returns the job as stored afterwards (null if it does not exist). Must run inside
   * the product's mailbox.
   */
  async reevaluate(productId: string, jobId: string): Promise<Stored<JobDoc> | null> {
    const r = await this.#core.writes.update(productId, jobId, 'supervisor', async (draft) => {
      const stage = draft.stage;
      if (stage === 'shipped' || stage === 'dead_letter') return null;
      const status = await this.status(productId, draft.doc.deps, draft.doc.depsMode);
      const event = this.event(stage, status);
      if (event === 'DEPENDENCY_FAILED') {
        draft.send({ type: 'DEPENDENCY_FAILED' }, { dependencyId: status.failedDep });
      } else if (event !== null) {
        draft.send({ type: event });
      }
      return null;
    });
    if (!r.ok && !isFleetError(r.error, 'NOT_FOUND')) throw r.error;
    return r.ok ? r.value : null;
  }

  /**
   * Re-evaluates the dependents of `jobId` (its outbox's "notify my dependents"). Runs
   * inside the product's mailbox, as part of the write that notified.
   */
  async cascade(productId: string, jobId: string): Promise<void> {
    const dependents = await this.#core.store.jobs.dependents(productId, jobId);
    const y = new Yielder();
    for (let i = 0; i < dependents.length; i += CASCADE_SLICE) {
      const slice = dependents.slice(i, i + CASCADE_SLICE);
      for (const d of await this.needingReevaluation(slice)) {
        await y.next();
        await this.#core.isolated(d, 'dependency re-evaluation', () =>
          this.reevaluate(d.productId, d.id),
        );
      }
    }
  }
}
