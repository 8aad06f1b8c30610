/**
 * Fleet's typed HTTP client (`fleet/client`): `createFleetClient({ baseUrl, token })`,
 * its errors, the routes it calls, and the backoff it retries with.
 */
export { type BackoffOptions, backoffMs, sleep } from './backoff.js';
export {
  FleetApiError,
  FleetNetworkError,
  type NetworkFailure,
  networkErrorOf,
  type ProblemBody,
  parseRetryAfter,
} from './errors.js';
export {
  type Artifact,
  type CallOptions,
  type Claim,
  createFleetClient,
  type Factory,
  FleetClient,
  type FleetClientOptions,
  type Job,
  type JobEvent,
  type Lease,
  type Page,
  type PageQuery,
  type PruneInput,
  type PruneResult,
  paginate,
  type Run,
  type SubmitManyItemResult,
} from './fleet-client.js';
export { CLIENT_ROUTES, type ClientOperation } from './routes.js';
