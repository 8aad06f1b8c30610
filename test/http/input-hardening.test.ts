/**
 * Issue 10, item 22 (its HTTP parts): one limit for job ids in paths, shared by the
 * router and the route schemas; an events cursor that is a canonical decimal seq and
 * nothing else; a JSON body with a `__proto__` key refused for what it is.
 */
import Fastify from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../adapters/http/config.js';
import { fleetPlugin, MAX_JOB_ID_LENGTH } from '../../adapters/http/index.js';
import { buildServer } from '../../adapters/http/server.js';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import {
  buildTestApp,
  closeTestApp,
  dumpProduct,
  expectProblem,
  PRODUCT,
  submitJob,
  type TestApp,
} from './support.js';

let t: TestApp;
beforeEach(async () => {
  t = await buildTestApp({ store: createMemoryStore() });
});
afterEach(() => closeTestApp(t));

describe('22: HTTP input hardening', () => {
  it('22: the router and the schemas accept job ids of the same length: a valid id is never refused, a longer one is a clear 400', async () => {
    const server = await buildServer(
      loadConfig({
        FLEET_STORE: 'memory',
        FLEET_TOKENS: '[{"token":"tok-a","productId":"p","roles":["admin"]}]',
      }),
      { logger: false },
    );
    try {
      const doc = (await server.app.inject({ url: '/docs/json' })).json();
      const param = doc.paths['/fleet/jobs/{id}'].get.parameters.find(
        (p: { name: string }) => p.name === 'id',
      );
      // One limit: what the OpenAPI document promises is what the router lets through.
      expect(param.schema.maxLength).toBe(server.app.initialConfig.routerOptions?.maxParamLength);
      expect(param.schema.maxLength).toBe(MAX_JOB_ID_LENGTH);
      const get = (id: string) =>
        server.app.inject({ url: `/fleet/jobs/${id}`, headers: { authorization: 'Bearer tok-a' } });
      // Fleet's ids (26 characters) and anything up to the limit reach the route: 404.
      for (const id of ['job_AAAAAAAAAAAAAAAAAAAAAA', 'x'.repeat(MAX_JOB_ID_LENGTH)]) {
        expectProblem(await get(id), 'NOT_FOUND');
      }
      for (const path of ['', '/events', '/runs', '/artifacts']) {
        const res = await server.app.inject({
          url: `/fleet/jobs/${'x'.repeat(MAX_JOB_ID_LENGTH + 1)}${path}`,
          headers: { authorization: 'Bearer tok-a' },
        });
        const problem = expectProblem(res, 'VALIDATION');
        expect(problem.detail).toBe(
          `a path parameter is too long: it must be at most ${MAX_JOB_ID_LENGTH} characters`,
        );
      }
    } finally {
      await server.close();
    }
    // A host whose router admits longer parameters: the schema refuses the same ids.
    const res = await t.call('GET', `/fleet/jobs/${'y'.repeat(MAX_JOB_ID_LENGTH + 1)}`);
    expect(res.statusCode).toBe(400);
    expect(expectProblem(res, 'VALIDATION').detail).toMatch(/at most 100 characters/);
  });

  it('22: the events cursor accepts only canonical decimal integers', async () => {
    const job = await submitJob(t);
    const events = (cursor: string) =>
      t.call('GET', `/fleet/jobs/${job.id}/events?cursor=${encodeURIComponent(cursor)}`);
    for (const bad of [
      '1e3',
      '0x2',
      ' 1',
      '1 ',
      '+1',
      '-1',
      '01',
      '1.0',
      '1_000',
      '',
      'NaN',
      'Infinity',
      '9007199254740992',
      '99999999999999999',
    ]) {
      const problem = expectProblem(await events(bad), 'VALIDATION');
      expect(problem.errors, `cursor ${JSON.stringify(bad)}`).toEqual([
        expect.objectContaining({ in: 'query', path: 'cursor' }),
      ]);
    }
    const all = (await events('0')).json();
    expect(all.items.map((e: { seq: number }) => e.seq)).toEqual([1]);
    expect((await events('1')).json().items).toEqual([]);
    expect((await events('9007199254740991')).statusCode).toBe(200);
  });

  it('22: a JSON body with a __proto__ key is a 400 VALIDATION naming the key, not "not valid JSON"', async () => {
    const cases: [string, string][] = [
      [
        '{"idempotencyKey":"k","bodyMd":"x","manifestSnapshot":{"__proto__":{"admin":true}}}',
        'manifestSnapshot.__proto__',
      ],
      ['{"__proto__":{"admin":true},"idempotencyKey":"k","bodyMd":"x"}', '__proto__'],
      [
        '{"idempotencyKey":"k","bodyMd":"x","manifestSnapshot":{"list":[1,{"constructor":{"prototype":{"x":1}}}]}}',
        'manifestSnapshot.list.1.constructor.prototype',
      ],
    ];
    for (const [payload, path] of cases) {
      const res = await t.call('POST', '/fleet/jobs', {
        token: 'submitter',
        payload,
        headers: { 'content-type': 'application/json' },
      });
      const problem = expectProblem(res, 'VALIDATION');
      expect(problem.detail).not.toMatch(/not valid JSON/);
      expect(problem.detail).toMatch(/is not accepted in JSON bodies/);
      expect(problem.detail.startsWith(`body.${path}: the key `)).toBe(true);
      expect(problem.errors).toEqual([expect.objectContaining({ in: 'body', path })]);
    }
    // Broken JSON is still called that.
    const broken = await t.call('POST', '/fleet/jobs', {
      token: 'submitter',
      payload: '{"__proto__": ',
      headers: { 'content-type': 'application/json' },
    });
    expect(expectProblem(broken, 'VALIDATION').detail).toBe('the body is not valid JSON');
    expect(await dumpProduct(t.store, PRODUCT)).toEqual({ jobs: [], factories: [] });
  });

  it('a problem names unknown or invalid keys without repeating a key of any length', async () => {
    const job = await submitJob(t);
    const long = (c: string) => c.repeat(900);
    const res = await t.call('POST', `/fleet/jobs/${job.id}/lease/release`, {
      token: 'factory',
      body: { factoryId: 'f1', leaseEpoch: 1, [long('a')]: 1, [long('b')]: 2, [long('c')]: 3 },
    });
    const problem = expectProblem(res, 'VALIDATION');
    expect(problem.detail).toContain('Unrecognized keys');
    expect(problem.detail.length).toBeLessThan(2000);
    for (const e of res.json().errors as Array<{ path: string; message: string }>) {
      expect(e.message.length).toBeLessThanOrEqual(200);
      expect(e.path.length).toBeLessThanOrEqual(200);
    }
  });

  it('22: a host whose router allows shorter params than Fleet accepts is warned at registration', async () => {
    const lines: string[] = [];
    const stream = { write: (line: string) => lines.push(line) };
    for (const [limit, warned] of [
      [50, true],
      [MAX_JOB_ID_LENGTH, false],
    ] as const) {
      lines.length = 0;
      const app = Fastify({
        logger: { level: 'warn', stream },
        routerOptions: { maxParamLength: limit },
      });
      await app.register(fleetPlugin, {
        store: createMemoryStore(),
        authenticate: () => ({ productId: PRODUCT, roles: ['submitter'] }),
      });
      await app.ready();
      await app.close();
      const warning = lines.find((l) => l.includes('maxParamLength'));
      expect(warning !== undefined, `limit ${limit}`).toBe(warned);
      if (warned) expect(warning).toContain(`maxParamLength (${limit})`);
    }
  });
});
