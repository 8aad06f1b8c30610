/**
 * The OpenAPI document lists every route with its schemas, roles and error responses;
 * Swagger UI answers; /metrics is valid Prometheus text with Fleet's metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetMetrics } from '../../adapters/http/index.js';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { INSPECTOR_COMPONENTS, INSPECTOR_ROUTES } from './inspector-support.js';
import { buildTestApp, claimJob, PRODUCT, ROUTES, submitJob, type TestApp } from './support.js';

type Operation = {
  operationId?: string;
  requestBody?: { required: boolean; content: Record<string, { schema: unknown }> };
  responses: Record<string, { content?: Record<string, unknown> }>;
  security?: unknown[];
  parameters?: { in: string; name: string }[];
};
type OpenApi = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
};

describe('OpenAPI document', () => {
  let t: TestApp;
  let doc: OpenApi;
  beforeAll(async () => {
    t = await buildTestApp({ store: createMemoryStore() });
    const res = await t.call('GET', '/docs/json', { token: null });
    expect(res.statusCode).toBe(200);
    doc = res.json();
  });
  afterAll(async () => {
    await t.app.close();
  });

  it('is OpenAPI 3.1 and lists every route of API.md plus the service routes, and nothing else', () => {
    expect(doc.openapi).toBe('3.1.0');
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const expected = [
      ...ROUTES.map((r) => `${r.method} ${r.openapi}`),
      'GET /healthz',
      'GET /readyz',
      'GET /metrics',
      // Admin, but also operator-only: its access is tested in backup.test.ts.
      'GET /fleet/admin/backup',
      // Admin and operator-only too: its access is tested in retention.test.ts.
      'POST /fleet/admin/prune',
      ...INSPECTOR_ROUTES,
    ];
    expect(listed.sort()).toEqual(expected.sort());
  });

  it('documents bodies (strict), parameters, problem responses and security', () => {
    for (const route of ROUTES) {
      const op = doc.paths[route.openapi]![route.method.toLowerCase()]!;
      expect(op.operationId, route.openapi).toBeTruthy();
      if (route.body) {
        const schema = op.requestBody!.content['application/json']!.schema as Record<
          string,
          unknown
        >;
        const object = (schema.anyOf as Record<string, unknown>[] | undefined)?.[0] ?? schema;
        expect(object.additionalProperties, `${route.method} ${route.openapi}`).toBe(false);
      }
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['400', '401', '403']));
      expect(op.responses['401']!.content).toHaveProperty(['application/problem+json']);
      if (route.jobRoute) {
        expect(op.parameters).toContainEqual(expect.objectContaining({ in: 'path', name: 'id' }));
        expect(Object.keys(op.responses)).toContain('404');
      }
    }
    expect(doc.components.securitySchemes).toHaveProperty('bearerAuth');
    expect(doc.paths['/fleet/jobs/{id}/cancel']!.post!.requestBody).toMatchObject({
      required: false,
    });
    expect(doc.paths['/fleet/jobs']!.post!.requestBody).toMatchObject({ required: true });
    expect(doc.paths['/healthz']!.get!.security).toEqual([]);
    expect(Object.keys(doc.paths['/fleet/claim']!.post!.responses)).toEqual(
      expect.arrayContaining(['200', '204']),
    );
    expect(doc.paths['/fleet/jobs/{id}']!.patch!.parameters).toContainEqual(
      expect.objectContaining({ in: 'header', name: 'if-match' }),
    );
    expect(Object.keys(doc.paths['/fleet/jobs/{id}']!.patch!.responses)).toEqual(
      expect.arrayContaining(['409', '412']),
    );
    expect(Object.keys(doc.paths['/fleet/jobs']!.post!.responses)).toEqual(
      expect.arrayContaining(['200', '201', '409', '413', '422']),
    );
  });

  it('names the public views as components, without internal fields', () => {
    expect(Object.keys(doc.components.schemas).sort()).toEqual(
      [
        'Artifact',
        'Claim',
        'Factory',
        'Job',
        'JobEvent',
        'JobSummary',
        'Lease',
        'Problem',
        'PruneResult',
        'Run',
        ...INSPECTOR_COMPONENTS,
      ].sort(),
    );
    const job = doc.components.schemas.Job as { properties: Record<string, unknown> };
    for (const field of ['id', 'stage', 'leaseEpoch', 'checkpoint', 'version', 'deadReason']) {
      expect(job.properties).toHaveProperty(field);
    }
    for (const field of ['snapshot', 'outbox', 'contentHash', 'rev', 'eventSeq', 'seq', 'dueAt']) {
      expect(job.properties).not.toHaveProperty(field);
    }
  });

  it('serves Swagger UI at /docs without auth', async () => {
    const ui = await t.call('GET', '/docs', { token: null });
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toMatch(/text\/html/);
  });
});

/** Parses Prometheus text exposition into samples; throws on a malformed line. */
function parsePrometheus(
  text: string,
): { name: string; labels: Record<string, string>; value: number }[] {
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  const types = new Map<string, string>();
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        expect(['counter', 'gauge', 'histogram']).toContain(meta[3]);
        types.set(meta[2]!, meta[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|\+Inf|NaN)$/.exec(line);
    if (!m) throw new Error(`malformed sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const lm of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/g)) {
      labels[lm[1]!] = lm[2]!;
    }
    const family = m[1]!.replace(/_(bucket|sum|count)$/, '');
    expect(types.has(m[1]!) || types.get(family) === 'histogram', `no TYPE for ${m[1]}`).toBe(true);
    samples.push({ name: m[1]!, labels, value: m[4] === '+Inf' ? Infinity : Number(m[4]) });
  }
  return samples;
}

describe('/metrics', () => {
  it('is valid Prometheus text with jobs by stage, claims, fenced, reaped leases, sweeps and latency', async () => {
    const metrics = new FleetMetrics();
    const t = await buildTestApp({ store: createMemoryStore(), metrics });
    for (let i = 0; i < 3; i++) await submitJob(t);
    const grant = await claimJob(t);
    await t.call('PATCH', `/fleet/jobs/${grant.job.id}`, {
      token: 'factory',
      body: { factoryId: 'f1', leaseEpoch: 99, to: 'building' },
    });
    t.clock.advance(120_000); // the lease expires
    const started = performance.now();
    const report = await t.coordinator.sweep();
    metrics.recordSweep('succeeded', performance.now() - started, report);
    metrics.recordSweep('failed', 3);
    const res = await t.call('GET', '/metrics', { token: null });
    expect(res.statusCode).toBe(200);
    const samples = parsePrometheus(res.body);
    const value = (name: string, labels: Record<string, string> = {}) =>
      samples.find(
        (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
      )?.value;
    expect(value('fleet_jobs', { product: PRODUCT, stage: 'queued' })).toBe(3);
    expect(value('fleet_jobs', { product: PRODUCT, stage: 'assigned' })).toBe(0);
    expect(value('fleet_jobs', { product: PRODUCT, stage: 'shipped' })).toBe(0);
    expect(value('fleet_claims_total')).toBe(1);
    expect(value('fleet_fenced_total')).toBe(1);
    expect(report.reaped).toBe(1);
    expect(value('fleet_reaped_leases_total')).toBe(1);
    expect(value('fleet_sweeps_total', { outcome: 'succeeded' })).toBe(1);
    expect(value('fleet_sweeps_total', { outcome: 'failed' })).toBe(1);
    expect(value('fleet_sweep_jobs_total', { action: 'reaped' })).toBe(1);
    expect(value('fleet_sweep_jobs_total', { action: 'failed' })).toBe(0);
    expect(value('fleet_sweep_duration_seconds_count')).toBe(2);
    expect(value('fleet_store_up')).toBe(1);
    const claimed = { route: '/fleet/claim', method: 'POST', status: '200' };
    expect(value('fleet_http_request_duration_seconds_count', claimed)).toBe(1);
    expect(value('fleet_http_request_duration_seconds_bucket', { ...claimed, le: '+Inf' })).toBe(1);
    const submits = samples.filter(
      (s) =>
        s.name === 'fleet_http_request_duration_seconds_bucket' &&
        s.labels.route === '/fleet/jobs' &&
        s.labels.status === '201',
    );
    const counts = submits.map((s) => s.value);
    expect(counts).toEqual([...counts].sort((a, b) => a - b)); // cumulative buckets
    expect(counts.at(-1)).toBe(3);
    // Unknown paths share one label value: the route label cannot explode.
    await t.call('GET', '/fleet/a-random-path-1');
    await t.call('GET', '/fleet/a-random-path-2');
    const after = parsePrometheus((await t.call('GET', '/metrics', { token: null })).body);
    expect(after.some((s) => s.labels.route?.includes('random'))).toBe(false);
    expect(
      after.find(
        (s) =>
          s.name === 'fleet_http_request_duration_seconds_count' && s.labels.route === 'unmatched',
      )?.value,
    ).toBe(2);
    await t.app.close();
  });

  it('escapes label values', async () => {
    const metrics = new FleetMetrics();
    metrics.recordRequest('/a"b\\c\nd', 'GET', 200, 0.001);
    const text = await metrics.render();
    expect(text).toContain('route="/a\\"b\\\\c\\nd"');
    parsePrometheus(text);
  });
});
