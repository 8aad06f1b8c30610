/**
 * The job event stream: what each event type means and what its `data` holds.
 *
 * Every event's `data` carries `from` and `to` (the job's stage before and after; equal
 * when the stage did not change) and `leaseEpoch` (the job's epoch after the event), so
 * projections never need the job document. Events are appended in `seq` order 1, 2, 3...
 * with no gap (numbers are assigned on the job write; see the outbox in coordinator.ts).
 */
import type { DeadReason, EventDoc, Stage, Usage } from './types.js';

export const JOB_EVENT_TYPES = [
  'submitted',
  'superseded',
  'blocked',
  'unblocked',
  'claimed',
  'stage_changed',
  'failed',
  'released',
  'lease_expired',
  'retry_due',
  'requeued',
  'cancelled',
  'dependency_failed',
  'budget_exceeded',
  'checkpoint_saved',
  'insights_recorded',
  'artifact_recorded',
] as const;

export type JobEventType = (typeof JOB_EVENT_TYPES)[number];

interface Base {
  from: Stage;
  to: Stage;
  leaseEpoch: number;
}

/** `data` of each event type. */
export interface JobEventData {
  submitted: Base & { version: number };
  superseded: Base & { version: number };
  blocked: Base;
  unblocked: Base;
  claimed: Base & { factoryId: string; attempt: number; runId: string; expiresAt: string };
  stage_changed: Base & { factoryId: string };
  failed: Base & {
    factoryId: string;
    errorClass: string | null;
    notBefore: string | null;
    deadReason: DeadReason | null;
  };
  released: Base & { factoryId: string; reason: string | null };
  lease_expired: Base & { factoryId: string | null; deadReason: DeadReason | null };
  retry_due: Base;
  requeued: Base;
  cancelled: Base & { deadReason: DeadReason; reason: string | null };
  dependency_failed: Base & { deadReason: DeadReason; dependencyId: string | null };
  budget_exceeded: Base & { deadReason: DeadReason; exceeded: 'tokens' | 'usd' | 'wall' };
  checkpoint_saved: Base & { factoryId: string };
  insights_recorded: Base & { factoryId: string; runId: string; attempt: number; insights: Usage };
  artifact_recorded: Base & { factoryId: string; artifactId: string; name: string; uri: string };
}

/** An event document with its `data` typed by `type`. */
export type JobEvent = {
  [K in JobEventType]: Omit<EventDoc, 'type' | 'data'> & { type: K; data: JobEventData[K] };
}[JobEventType];

const TYPES = new Set<string>(JOB_EVENT_TYPES);

/** Narrows a stored event to the typed union (throws on an unknown type: the stream is ours). */
export function asJobEvent(doc: EventDoc): JobEvent {
  if (!TYPES.has(doc.type)) throw new TypeError(`unknown job event type ${doc.type}`);
  return doc as unknown as JobEvent;
}

/** Compile-time exhaustiveness check for `switch` over event types. */
export function assertNever(x: never): never {
  throw new TypeError(`unhandled case ${JSON.stringify(x)}`);
}

/** Deterministic event id: one per (job, seq), so re-appending is idempotent. */
export const eventId = (jobId: string, seq: number): string =>
  `${jobId}.e${String(seq).padStart(10, '0')}`;

/** Deterministic run id: one per (job, attempt). */
export const runId = (jobId: string, attempt: number): string => `${jobId}.r${attempt}`;
