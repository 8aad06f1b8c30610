/**
 * Issue 10, item 6: `GET /fleet/jobs` pages can no longer be hundreds of megabytes. A
 * list is of summaries (no `bodyMd`, no `manifestSnapshot`) unless `view=full` is
 * asked, and every page ends early at the server's byte budget (at least one job per
 * page), on every store.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../adapters/http/config.js';
import { STORES } from '../support/stores.js';
import { buildTestApp, closeTestApp, expectProblem, submitJob, type TestApp } from './support.js';

type Item = Record<string, unknown> & { id: string };
type ListPage = { items: Item[]; nextCursor: string | null };

const BODY = 200_000;
/** Two jobs of these fit, three do not. */
const BUDGET = 450_000;

describe.each(STORES)('job lists on $name', (factory) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await buildTestApp({ store: await factory.open(), listPageBytes: BUDGET });
  });
  afterEach(() => closeTestApp(t));

  /** Every page of `query`, following nextCursor. */
  const pages = async (query: string): Promise<ListPage[]> => {
    const out: ListPage[] = [];
    let cursor: string | null = null;
    do {
      const sep = query === '' ? '' : '&';
      const url: string = `/fleet/jobs?${query}${cursor === null ? '' : `${sep}cursor=${encodeURIComponent(cursor)}`}`;
      const res = await t.call('GET', url);
      expect(res.statusCode, res.body).toBe(200);
      out.push(res.json() as ListPage);
      cursor = out[out.length - 1]!.nextCursor;
    } while (cursor !== null && out.length < 100);
    return out;
  };

  it('6: list pages are summaries unless asked (view=full), and full pages stop at the byte budget', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const job = await submitJob(t, {
        bodyMd: String(i).repeat(BODY),
        manifestSnapshot: { repo: `r${i}` },
      });
      ids.unshift(job.id); // newest first
    }
    // Default: summaries, one page.
    const [summary, ...more] = await pages('');
    expect(more).toEqual([]);
    expect(summary!.items.map((j) => j.id)).toEqual(ids);
    for (const job of summary!.items) {
      expect(job).not.toHaveProperty('bodyMd');
      expect(job).not.toHaveProperty('manifestSnapshot');
      expect(job).toMatchObject({ stage: 'queued', priority: 'medium', version: 1 });
    }
    expect((await pages('view=summary'))[0]).toEqual(summary);

    // Whole jobs: two fit the budget, the third comes on the next page.
    const full = await pages('view=full&limit=10');
    expect(full.map((p) => p.items.map((j) => j.id))).toEqual([ids.slice(0, 2), ids.slice(2)]);
    expect(full[0]!.items[0]).toMatchObject({
      bodyMd: '2'.repeat(BODY),
      manifestSnapshot: { repo: 'r2' },
    });
    for (const p of full) expect(JSON.stringify(p).length).toBeLessThan(BUDGET + 10_000);

    // A job over the whole budget comes alone on its page, and is never skipped.
    // 900 kB: over the budget, under the body limit.
    const giant = await submitJob(t, { bodyMd: 'g'.repeat(2 * BUDGET) });
    const withGiant = await pages('view=full&limit=10');
    expect(withGiant.map((p) => p.items.map((j) => j.id))).toEqual([
      [giant.id],
      ids.slice(0, 2),
      ids.slice(2),
    ]);
    // Summaries of the same jobs still fit on one page.
    expect((await pages('limit=10')).map((p) => p.items.length)).toEqual([4]);
  });

  it('6: an unknown view is a 400 VALIDATION naming the query parameter', async () => {
    const res = await t.call('GET', '/fleet/jobs?view=bodies');
    const problem = expectProblem(res, 'VALIDATION');
    expect(problem.errors).toEqual([expect.objectContaining({ in: 'query', path: 'view' })]);
  });
});

describe('6: the list budget is documented and configurable', () => {
  it('6: the OpenAPI document names the view parameter and the JobSummary item; FLEET_LIST_PAGE_BYTES sets the budget', async () => {
    const { createMemoryStore } = await import('../../adapters/store/memory/index.js');
    const t = await buildTestApp({ store: createMemoryStore() });
    try {
      const doc = (await t.app.inject({ url: '/docs/json' })).json();
      const op = doc.paths['/fleet/jobs'].get;
      const view = op.parameters.find((p: { name: string }) => p.name === 'view');
      expect(view).toMatchObject({
        in: 'query',
        schema: { enum: ['summary', 'full'], default: 'summary' },
      });
      expect(op.description).toMatch(/byte budget \(default 4 MiB/);
      expect(JSON.stringify(op.responses['200'])).toContain('#/components/schemas/JobSummary');
      expect(doc.components.schemas.JobSummary.properties).not.toHaveProperty('bodyMd');
    } finally {
      await t.app.close();
    }
    expect(loadConfig({ FLEET_STORE: 'memory' }).listPageBytes).toBe(4 * 1024 * 1024);
    expect(
      loadConfig({ FLEET_STORE: 'memory', FLEET_LIST_PAGE_BYTES: '512KiB' }).listPageBytes,
    ).toBe(512 * 1024);
    expect(() => loadConfig({ FLEET_LIST_PAGE_BYTES: '10' })).toThrow(
      /FLEET_LIST_PAGE_BYTES: must be at least 1 KiB/,
    );
  });
});
