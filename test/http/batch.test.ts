/**
 * `POST /fleet/jobs/batch`: one result per item (status, idempotency, job or problem),
 * 200 when every item succeeded and 207 when some did not; the call as a whole is one
 * problem when it is malformed, too large or holds more than 1,000 items, and then
 * nothing is written.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BatchItemResult } from '../../adapters/http/index.js';
import { jobIdFor } from '../../runtime/index.js';
import { STORES } from '../support/stores.js';
import {
  buildTestApp,
  closeTestApp,
  dumpProduct,
  expectProblem,
  PRODUCT,
  type TestApp,
} from './support.js';

const URL = '/fleet/jobs/batch';

describe.each(STORES)('POST /fleet/jobs/batch ($name)', (factory) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await buildTestApp({ store: await factory.open() });
  });
  afterEach(async () => {
    await closeTestApp(t);
  });

  const items = (res: { json(): unknown }) => (res.json() as { items: BatchItemResult[] }).items;

  it('answers each item on its own: 207 with created, existing, conflict, invalid and dependency results', async () => {
    const first = await t.call('POST', '/fleet/jobs', {
      token: 'submitter',
      body: { idempotencyKey: 'before', bodyMd: 'b' },
    });
    expect(first.statusCode).toBe(201);
    const res = await t.call('POST', URL, {
      token: 'submitter',
      body: {
        jobs: [
          { idempotencyKey: 'a', bodyMd: 'a' },
          { idempotencyKey: 'b', bodyMd: 'b', depKeys: ['a', 'before'] },
          { idempotencyKey: 'before', bodyMd: 'b' },
          { idempotencyKey: 'before', bodyMd: 'other' },
          { idempotencyKey: 'c', bodyMd: 'c', unknownField: 1 },
          { idempotencyKey: 'd', bodyMd: 'd', deps: ['job_none'] },
          42,
        ],
      },
    });
    expect(res.statusCode, res.body).toBe(207);
    const out = items(res);
    expect(out.map((i) => [i.index, i.status, i.idempotency ?? i.problem?.code])).toEqual([
      [0, 201, 'created'],
      [1, 201, 'created'],
      [2, 200, 'existing'],
      [3, 409, 'IDEMPOTENCY_CONFLICT'],
      [4, 400, 'VALIDATION'],
      [5, 422, 'UNKNOWN_DEPENDENCY'],
      [6, 400, 'VALIDATION'],
    ]);
    expect(out[0]?.job).toMatchObject({ id: jobIdFor(PRODUCT, 'a'), stage: 'queued' });
    expect(out[1]?.job).toMatchObject({
      stage: 'blocked',
      deps: [jobIdFor(PRODUCT, 'a'), jobIdFor(PRODUCT, 'before')].sort(),
    });
    // The public view only: no internal fields.
    expect(out[0]?.job).not.toHaveProperty('snapshot');
    expect(out[0]?.job).not.toHaveProperty('outbox');
    const problem = out[3]?.problem;
    expect(problem).toMatchObject({
      type: 'urn:fleet:problem:idempotency-conflict',
      status: 409,
      code: 'IDEMPOTENCY_CONFLICT',
    });
    expect(problem?.detail).toMatch(/does not supersede/);
    expect(out[4]?.problem?.detail).toMatch(/unknownField/);
    // Created in the caller's product only, with the caller as the events' actor.
    const events = await t.call('GET', `/fleet/jobs/${jobIdFor(PRODUCT, 'a')}/events`, {
      token: 'submitter',
    });
    expect((events.json() as { items: unknown[] }).items).toMatchObject([{ type: 'submitted' }]);
    const others = await t.call('GET', '/fleet/jobs', { token: 'otherSubmitter' });
    expect((others.json() as { items: unknown[] }).items).toEqual([]);
  });

  it('200 when every item succeeded; the same batch again is 200 with every item existing and changes nothing', async () => {
    const body = {
      jobs: Array.from({ length: 20 }, (_, i) => ({
        idempotencyKey: `k${i}`,
        bodyMd: `job ${i}`,
        ...(i > 0 ? { depKeys: [`k${i - 1}`] } : {}),
      })),
    };
    const res = await t.call('POST', URL, { token: 'submitter', body });
    expect(res.statusCode, res.body).toBe(200);
    expect(items(res).every((i) => i.status === 201 && i.idempotency === 'created')).toBe(true);
    const before = await dumpProduct(t.store, PRODUCT);
    const again = await t.call('POST', URL, { token: 'submitter', body });
    expect(again.statusCode).toBe(200);
    expect(items(again).map((i) => i.status)).toEqual(Array(20).fill(200));
    expect(items(again).map((i) => i.job?.id)).toEqual(items(res).map((i) => i.job?.id));
    expect(await dumpProduct(t.store, PRODUCT)).toEqual(before);
  });

  it('the call as a whole: 1,001 items, a malformed body, a body of another shape and a factory token are each one problem and write nothing', async () => {
    const before = await dumpProduct(t.store, PRODUCT);
    const tooMany = {
      jobs: Array.from({ length: 1001 }, (_, i) => ({ idempotencyKey: `k${i}`, bodyMd: 'x' })),
    };
    const over = expectProblem(
      await t.call('POST', URL, { token: 'submitter', body: tooMany }),
      'VALIDATION',
    );
    expect(over.detail).toMatch(/jobs/);
    expect(over.detail).toMatch(/1000/);
    const malformed = await t.call('POST', URL, {
      token: 'submitter',
      headers: { 'content-type': 'application/json' },
      payload: '{"jobs": [{"idempotencyKey": "a", ',
    });
    expect(expectProblem(malformed, 'VALIDATION').detail).toMatch(/not valid JSON/);
    for (const body of [
      { jobs: 'a' },
      { jobs: [], extra: 1 },
      [{ idempotencyKey: 'a', bodyMd: 'a' }],
      {},
    ]) {
      expectProblem(await t.call('POST', URL, { token: 'submitter', body }), 'VALIDATION');
    }
    expectProblem(await t.call('POST', URL, { token: 'factory', body: { jobs: [] } }), 'FORBIDDEN');
    expectProblem(
      await t.call('POST', URL, { token: null, body: { jobs: [] } }),
      'UNAUTHENTICATED',
    );
    expect(await dumpProduct(t.store, PRODUCT)).toEqual(before);
  });

  it('1,000 small jobs fit the default limits and are all created', async () => {
    const body = {
      jobs: Array.from({ length: 1000 }, (_, i) => ({
        idempotencyKey: `bulk-${i}`,
        bodyMd: `Do task ${i}: ${'x'.repeat(200)}`,
        priority: 'high',
        capabilities: ['node'],
      })),
    };
    const payload = JSON.stringify(body);
    expect(payload.length).toBeGreaterThan((1024 * 1024) / 4);
    const res = await t.call('POST', URL, { token: 'submitter', body });
    expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
    expect(items(res)).toHaveLength(1000);
    expect(new Set(items(res).map((i) => i.job?.id)).size).toBe(1000);
  });
});
