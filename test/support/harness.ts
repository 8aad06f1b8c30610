/**
 * A coordinator on a fresh store with a simulated clock, plus terse helpers that throw
 * on unexpected failures so tests read as the scenario they check.
 */
import { randomUUID } from 'node:crypto';
import { SimulatedClock } from '../../runtime/clock.js';
import { Coordinator, type CoordinatorOptions } from '../../runtime/coordinator.js';
import type { DocumentStore, Stored } from '../../runtime/document-store.port.js';
import type { FleetError, Result } from '../../runtime/errors.js';
import type {
  ClaimGrant,
  EventDoc,
  JobDoc,
  PatchTarget,
  SubmitInput,
} from '../../runtime/types.js';
import type { StoreFactory } from './stores.js';

export interface Harness {
  store: DocumentStore;
  clock: SimulatedClock;
  coord: Coordinator;
  /** A product id unique to this harness. */
  product: string;
  /** Submits (idempotencyKey defaults to a fresh one) and returns the job; throws on failure. */
  submit(input?: Partial<SubmitInput>): Promise<Stored<JobDoc>>;
  /** Claims for `factoryId`; throws if nothing was handed out. */
  claim(factoryId: string, capabilities?: string[]): Promise<ClaimGrant>;
  /** Moves a claimed job through `stages` with its grant's epoch; throws on failure. */
  advance(grant: ClaimGrant, ...stages: PatchTarget[]): Promise<JobDoc>;
  /** The job as stored now; throws if missing. */
  job(id: string): Promise<Stored<JobDoc>>;
  /** Every event of the job, in order. */
  events(id: string): Promise<EventDoc[]>;
  /** A deep copy of every document of the product's job, for "nothing changed" checks. */
  dump(id: string): Promise<unknown>;
  close(): Promise<void>;
}

/** Unwraps a result or throws its error (with the code in the message). */
export function must<T>(r: Result<T>): T {
  if (r.ok) return r.value;
  throw r.error;
}

/** The error of a failed result; throws if it succeeded. */
export function failure<T>(r: Result<T>): FleetError {
  if (r.ok) throw new Error(`expected a failure, got ${JSON.stringify(r.value).slice(0, 300)}`);
  return r.error;
}

export async function makeHarness(
  factory: StoreFactory,
  options: Partial<CoordinatorOptions> = {},
): Promise<Harness> {
  const store = await factory.open();
  const clock = new SimulatedClock();
  const coord = new Coordinator({
    store,
    clock,
    random: () => 0.5,
    leaseMs: 60_000,
    liveProjections: true,
    ...options,
  });
  const product = `p-${randomUUID().slice(0, 8)}`;
  const h: Harness = {
    store,
    clock,
    coord,
    product,
    async submit(input = {}) {
      const r = await coord.submit(product, {
        idempotencyKey: randomUUID(),
        bodyMd: 'do the work',
        ...input,
      } as SubmitInput);
      return must(r).job;
    },
    async claim(factoryId, capabilities) {
      const grant = must(
        await coord.claimNextJob(product, { factoryId, ...(capabilities ? { capabilities } : {}) }),
      );
      if (!grant) throw new Error(`nothing to claim for ${factoryId}`);
      return grant;
    },
    async advance(grant, ...stages) {
      let job: JobDoc = grant.job;
      for (const to of stages) {
        job = must(
          await coord.transition(product, grant.job.id, {
            factoryId: grant.job.holderFactoryId ?? '',
            leaseEpoch: grant.lease.leaseEpoch,
            to,
            ...(to === 'failed' ? { error: { class: 'transient', message: 'boom' } } : {}),
          }),
        );
      }
      return job;
    },
    async job(id) {
      return must(await coord.getJob(product, id));
    },
    async events(id) {
      const all: EventDoc[] = [];
      let cursor: string | null = null;
      do {
        const page: { items: EventDoc[]; nextCursor: string | null } = must(
          await coord.listEvents(product, id, { limit: 500, cursor }),
        );
        all.push(...page.items);
        cursor = page.nextCursor;
      } while (cursor !== null);
      return all;
    },
    async dump(id) {
      const job = await store.jobs.read(product, id);
      const events = await store.events.list(id, { limit: 10_000 });
      const runs = await store.runs.list(id, { limit: 500 });
      const lease = await store.leases.read(id, id);
      const artifacts = await store.artifacts.list(id, { limit: 500 });
      return structuredClone({ job, events, runs: runs.items, lease, artifacts: artifacts.items });
    },
    async close() {
      await coord.drain();
      await store.close();
    },
  };
  return h;
}
