/**
 * Public types of the runtime, inferred from the zod schemas in `schemas.ts`.
 */
import type { z } from 'zod';
import type * as S from './schemas.js';

export type Stage = z.infer<typeof S.Stage>;
export type Priority = z.infer<typeof S.Priority>;
export type DepsMode = z.infer<typeof S.DepsMode>;
export type Health = z.infer<typeof S.Health>;
export type DeadReason = z.infer<typeof S.DeadReason>;
export type RunExit = z.infer<typeof S.RunExit>;
export type Budget = z.infer<typeof S.Budget>;
export type RetryPolicy = z.infer<typeof S.RetryPolicy>;
export type Checkpoint = z.infer<typeof S.Checkpoint>;
export type Insights = z.infer<typeof S.Insights>;
export type Usage = z.infer<typeof S.Usage>;
export type ErrorInfo = z.infer<typeof S.ErrorInfo>;
export type Artifact = z.infer<typeof S.Artifact>;

export type SubmitInput = z.input<typeof S.SubmitInput>;
export type SubmitRequest = z.output<typeof S.SubmitInput>;
export type SubmitManyItem = z.input<typeof S.SubmitManyItem>;
export type PatchInput = z.input<typeof S.PatchInput>;
export type PatchTarget = z.infer<typeof S.PatchTarget>;
export type ProgressInput = z.input<typeof S.ProgressInput>;
export type ClaimInput = z.input<typeof S.ClaimInput>;
export type RenewInput = z.input<typeof S.RenewInput>;
export type ReleaseInput = z.input<typeof S.ReleaseInput>;
export type HeartbeatInput = z.input<typeof S.HeartbeatInput>;

export type OutboxEffect = z.infer<typeof S.OutboxEffect>;
export type CurrentRun = z.infer<typeof S.CurrentRun>;
export type JobDoc = z.infer<typeof S.JobDoc>;
export type RunDoc = z.infer<typeof S.RunDoc>;
export type LeaseDoc = z.infer<typeof S.LeaseDoc>;
export type FactoryDoc = z.infer<typeof S.FactoryDoc>;
export type ProfileDoc = z.infer<typeof S.ProfileDoc>;
export type EventDoc = z.infer<typeof S.EventDoc>;
export type ArtifactDoc = z.infer<typeof S.ArtifactDoc>;

/** A stage in which a factory holds the job's lease. */
export type ActiveStage = 'assigned' | 'building' | 'review' | 'testing';
export const ACTIVE_STAGES: readonly Stage[] = ['assigned', 'building', 'review', 'testing'];
/** Stages a job never leaves on its own (dead_letter only by an admin requeue). */
export const TERMINAL_STAGES: readonly Stage[] = ['shipped', 'dead_letter'];

/** Outcome of an idempotent submission. */
export type SubmitOutcome = 'created' | 'existing' | 'superseded';

/** What a successful claim hands to the factory. */
export interface ClaimGrant {
  job: JobDoc;
  lease: { leaseEpoch: number; expiresAt: string };
  run: { id: string; attempt: number };
}

/** A page of a list: `nextCursor` is opaque, null on the last page. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
