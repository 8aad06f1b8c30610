/**
 * Every route the client calls, in the OpenAPI document's path form. The client builds
 * its requests from this table only, and a contract test checks each entry against the
 * server's `/docs/json`, so the client cannot call a route the server does not serve.
 */
export const CLIENT_ROUTES = {
  submit: { method: 'POST', path: '/fleet/jobs' },
  submitMany: { method: 'POST', path: '/fleet/jobs/batch' },
  listJobs: { method: 'GET', path: '/fleet/jobs' },
  getJob: { method: 'GET', path: '/fleet/jobs/{id}' },
  transition: { method: 'PATCH', path: '/fleet/jobs/{id}' },
  claim: { method: 'POST', path: '/fleet/claim' },
  renewLease: { method: 'POST', path: '/fleet/jobs/{id}/lease/renew' },
  releaseLease: { method: 'POST', path: '/fleet/jobs/{id}/lease/release' },
  recordProgress: { method: 'POST', path: '/fleet/jobs/{id}/progress' },
  heartbeat: { method: 'POST', path: '/fleet/factories/heartbeat' },
  listFactories: { method: 'GET', path: '/fleet/factories' },
  listRuns: { method: 'GET', path: '/fleet/jobs/{id}/runs' },
  listEvents: { method: 'GET', path: '/fleet/jobs/{id}/events' },
  listArtifacts: { method: 'GET', path: '/fleet/jobs/{id}/artifacts' },
  requeue: { method: 'POST', path: '/fleet/jobs/{id}/requeue' },
  cancel: { method: 'POST', path: '/fleet/jobs/{id}/cancel' },
  health: { method: 'GET', path: '/healthz' },
  ready: { method: 'GET', path: '/readyz' },
  // Retention (issue 14)
  prune: { method: 'POST', path: '/fleet/admin/prune' },
} as const satisfies Record<string, { method: 'GET' | 'POST' | 'PATCH'; path: string }>;

/** A client operation (a key of {@link CLIENT_ROUTES}). */
export type ClientOperation = keyof typeof CLIENT_ROUTES;
