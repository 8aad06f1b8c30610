/**
 * The HTTP adapter: `fleetPlugin` (the REST contract of API.md as a Fastify plugin),
 * its options and auth hook types, the metrics registry, and the problem-document
 * helpers a host can reuse for its own framework errors.
 */
export {
  type Access,
  type Authenticate,
  admits,
  callerKey,
  FLEET_ROLES,
  type FleetAuth,
  type FleetRole,
} from './auth.js';
export {
  BATCH_BODY_FACTOR,
  type BatchItemResult,
  BatchSubmitBody,
  BatchSubmitResult,
} from './batch-routes.js';
export { ClaimWaiters, type WaitResult } from './claim-waiters.js';
export { fleetClientErrorHandler } from './client-errors.js';
export { type FleetPluginOptions, fleetPlugin } from './fleet-plugin.js';
export { MAX_JOB_ID_LENGTH } from './http-schemas.js';
export { type ClaimWaitOutcome, FleetMetrics, PROMETHEUS_MEDIA_TYPE } from './metrics.js';
export {
  fleetFrameworkErrors,
  type MappedProblem,
  PROBLEM_MEDIA_TYPE,
  type ProblemDocument,
  problemType,
  sendProblem,
  toProblem,
} from './problem.js';
export { parseRateLimit, type RateLimit } from './rate-limit.js';
