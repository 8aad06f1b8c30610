/**
 * Queued job documents built the way `Coordinator.submit` builds them, so a benchmark
 * can put a million jobs into a store without a million submissions.
 *
 * `queuedJobDoc` mirrors `Coordinator.#newDoc` for a job with met deps, followed by
 * what submit does to it: the `submitted` event is numbered (`eventSeq: 1`), the draft
 * is written at `rev: 0`, and the follow-up empties the outbox. The result is the job
 * document as a submission leaves it in the store. (The `submitted` event document
 * itself is not written: nothing on the claim path reads it, and a million of them
 * would only add memory. Use `submittedEvent` when you want it.)
 *
 * `checkAgainstSubmit` proves the builder right at run time: it submits one job through
 * a real coordinator and compares the stored document field for field.
 */
import { isDeepStrictEqual } from 'node:util';
import { initialTransition } from 'xstate';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { JOB_MACHINE_VERSION, jobMachine } from '../../machines/job.machine.js';
import { ZERO_USAGE } from '../../runtime/budget.js';
import { jobIdFor } from '../../runtime/canonical.js';
import { iso } from '../../runtime/clock.js';
import { Coordinator } from '../../runtime/coordinator.js';
import { eventId } from '../../runtime/events.js';
import { DEFAULT_RETRY } from '../../runtime/retry-policy.js';
import type { EventDoc, JobDoc, Priority } from '../../runtime/types.js';

/** The persisted initial snapshot for the default retry policy (max 3). */
const INITIAL_SNAPSHOT = jobMachine.getPersistedSnapshot(
  initialTransition(jobMachine, { maxRetries: 3 })[0],
) as Record<string, unknown>;

/** The retry policy a submission without `retry` gets. */

export interface QueuedJobSpec {
  productId: string;
  idempotencyKey: string;
  bodyMd: string;
  priority: Priority;
  capabilities: readonly string[];
  /** Submission sequence: unique and increasing within the store. */
  seq: number;
  /** Submission time, ms since the epoch. */
  now: number;
  /** Any string; a real submission stores the sha256 of the canonical content. */
  contentHash: string;
  /** Defaults to `jobIdFor(productId, idempotencyKey)`, as submit derives it. */
  id?: string;
}

/** The job document `submit` would leave in the store for this spec (deps met, no budget). */
export function queuedJobDoc(spec: QueuedJobSpec): JobDoc {
  const now = iso(spec.now);
  // Key order follows Coordinator.#newDoc, so the stored JSON is the same text.
  return {
    id: spec.id ?? jobIdFor(spec.productId, spec.idempotencyKey),
    productId: spec.productId,
    idempotencyKey: spec.idempotencyKey,
    stage: 'queued',
    bodyMd: spec.bodyMd,
    manifestSnapshot: {},
    priority: spec.priority,
    capabilities: [...new Set(spec.capabilities)].sort(),
    deps: [],
    depsMode: 'hard',
    budget: null,
    retry: { ...DEFAULT_RETRY, on: [...DEFAULT_RETRY.on] },
    kind: 'leaf',
    parentId: null,
    trackerItemId: null,
    engineClass: null,
    profile: null,
    checkpoint: null,
    attempt: 0,
    failures: 0,
    leaseEpoch: 0,
    holderFactoryId: null,
    leaseExpiresAt: null,
    notBefore: null,
    deadReason: null,
    lastError: null,
    firstClaimedAt: null,
    usage: { ...ZERO_USAGE },
    run: null,
    createdAt: now,
    updatedAt: now,
    version: 1,
    seq: spec.seq,
    contentHash: spec.contentHash,
    dueAt: null,
    rev: 0,
    eventSeq: 1,
    outbox: [],
    machineVersion: JOB_MACHINE_VERSION,
    snapshot: INITIAL_SNAPSHOT,
  };
}

/** The `submitted` event (seq 1) that submit writes for `job`. */
export function submittedEvent(job: JobDoc): EventDoc {
  return {
    id: eventId(job.id, 1),
    productId: job.productId,
    jobId: job.id,
    seq: 1,
    type: 'submitted',
    at: job.createdAt,
    actor: null,
    data: { from: 'queued', to: 'queued', version: 1, leaseEpoch: 0 },
  };
}

/**
 * Submits one job through a real coordinator on a scratch memory store and checks that
 * `queuedJobDoc` builds the same document (etag aside) and `submittedEvent` the same
 * event. Throws, naming the differing fields, when the builder has drifted.
 */
export async function checkAgainstSubmit(): Promise<void> {
  const store = createMemoryStore();
  try {
    const coord = new Coordinator({ store });
    const input = {
      idempotencyKey: 'bench-fixture-check',
      bodyMd: '# Check\n',
      priority: 'high' as const,
      capabilities: ['lang:ts', 'git', 'lang:ts'],
    };
    const r = await coord.submit('bench-check', input);
    if (!r.ok) throw r.error;
    const { _etag: _ignored, ...returned } = r.value.job;
    // Compare as stored (JSON): a store hands back the written object, undefined members included.
    const real = JSON.parse(JSON.stringify(returned)) as JobDoc;
    const doc = queuedJobDoc({
      productId: 'bench-check',
      idempotencyKey: input.idempotencyKey,
      bodyMd: input.bodyMd,
      priority: input.priority,
      capabilities: input.capabilities,
      seq: real.seq,
      now: Date.parse(real.createdAt),
      contentHash: real.contentHash,
    });
    // As the store keeps it: a JSON round trip (the machine's snapshot has undefined members).
    const built = JSON.parse(JSON.stringify(doc)) as JobDoc;
    const diff = Object.keys({ ...real, ...built }).filter(
      (k) => !isDeepStrictEqual(real[k as keyof JobDoc], built[k as keyof JobDoc]),
    );
    if (diff.length > 0 || JSON.stringify(real) !== JSON.stringify(built)) {
      throw new Error(
        `bench/support/job-docs.ts has drifted from Coordinator.submit; differing fields: ${diff.join(', ') || '(key order)'}` +
          diff
            .map(
              (k) =>
                `\n  ${k}: submit ${JSON.stringify(real[k as keyof JobDoc])}\n  ${' '.repeat(k.length)}  built  ${JSON.stringify(built[k as keyof JobDoc])}`,
            )
            .join(''),
      );
    }
    const events = await store.events.list(real.id, { limit: 10 });
    // The writer stamp (the writing process and its append count) is not part of the event.
    const { writer: _writer, ...stored } = events[0] ?? ({} as EventDoc);
    if (events.length !== 1 || !isDeepStrictEqual(stored, submittedEvent(built))) {
      throw new Error(
        'bench/support/job-docs.ts: submittedEvent differs from the event submit writes',
      );
    }
  } finally {
    await store.close();
  }
}
