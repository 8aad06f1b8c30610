/**
 * Fleet's runtime: the coordinator and everything it is made of. Adapters (stores,
 * HTTP, CLI) depend on this; it depends on `machines/` and on the store port only.
 */
export {
  type ActivityEvent,
  type ActivityOptions,
  type ActivitySource,
  ActivityTracker,
  type Throughput,
} from './activity.js';
export {
  addUsage,
  durationMs,
  exceededBudget,
  MAX_TIME_MS,
  MAX_WALL_MS,
  usageIsRepresentable,
  wallDeadline,
  ZERO_USAGE,
} from './budget.js';
export { canonicalJson, contentHash, jobIdFor } from './canonical.js';
export { type Clock, iso, ms, SimulatedClock, systemClock } from './clock.js';
export {
  type Conditional,
  Coordinator,
  type CoordinatorOptions,
  type Logger,
  SUBMIT_MANY_MAX,
  type SubmitManyResult,
  type SweepReport,
} from './coordinator.js';
export { type DepsStatus, evaluateDeps, findCycle } from './deps.js';
export type {
  FinishedJob,
  FinishedJobKey,
  PurgedDocuments,
} from './document-store.port.js';
export {
  type ArtifactsContainer,
  type ClaimQuery,
  CONTAINERS,
  type Container,
  type ContainerKey,
  type DocumentStore,
  type EventsContainer,
  type FactoriesContainer,
  JOB_SUMMARY_OMITS,
  type JobCommit,
  type JobLink,
  type JobListQuery,
  type JobListView,
  type JobOfView,
  type JobSummary,
  type JobsContainer,
  type LeasesContainer,
  type PageRequest,
  type ProfilesContainer,
  type RunsContainer,
  type Stored,
} from './document-store.port.js';
export {
  ERROR_CODES,
  type ErrorCode,
  FleetError,
  fail,
  isFleetError,
  ok,
  type Result,
  unwrap,
} from './errors.js';
export {
  asJobEvent,
  assertNever,
  eventId,
  JOB_EVENT_TYPES,
  type JobEvent,
  type JobEventData,
  type JobEventType,
  runId,
} from './events.js';
export {
  explainFence,
  FENCE_REASONS,
  type FenceExplanation,
  type FenceReason,
} from './fence-reason.js';
export { isFenced, JobDraft, persistSnapshot, restoreSnapshot } from './job-draft.js';
export { type FollowOptions, type FollowSource, followJobEvents } from './job-follower.js';
export { jsonDepthExceeds, MAX_JSON_DEPTH } from './json-depth.js';
export { Mailboxes } from './mailbox.js';
export {
  type FactoryStatus,
  type FactorySummary,
  factoryStatus,
  LOST_AFTER_BEATS,
  OVERVIEW_FACTORY_LIMIT,
  type ProductOverview,
  productOverview,
  STALE_AFTER_BEATS,
} from './overview.js';
export {
  INITIAL_TIMELINE,
  type InsightTotals,
  type JobTimeline,
  LiveProjections,
  type ProjectionsSnapshot,
  rebuildAll,
  rebuildInsightTotals,
  rebuildStageCounts,
  rebuildTimelines,
  type StageCounts,
  type TimelineEntry,
  timelineEntries,
} from './projections.js';
export {
  emptyPruneReport,
  PRUNE_IDLE_MS,
  PRUNE_PER_SWEEP,
  type PruneOptions,
  type PruneReport,
} from './retention.js';
export { backoffDelay, DEFAULT_RETRY, isRetryable } from './retry-policy.js';
export * as schemas from './schemas.js';
export { PRIORITY_RANK } from './schemas.js';
export {
  type SupervisedCoordinator,
  type Supervisor,
  type SupervisorEvent,
  type SupervisorLogger,
  type SupervisorOptions,
  type SupervisorReport,
  type SweepOutcome,
  startSupervisor,
  type TimerClock,
} from './supervisor.js';
export * from './types.js';
