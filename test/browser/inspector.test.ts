/**
 * The inspector in a real browser: Debian's Chromium driven by playwright-core, against
 * a Fleet server in this process (memory store) on 127.0.0.1. Every test runs offline —
 * a request to any other host is aborted and fails the test — and fails on any console
 * message about the Content-Security-Policy and on any page error. Each test leaves a
 * screenshot in `test-results/` for a person to look at.
 *
 * Waits are on conditions (a highlighted state, a row, a dialog), bounded generously;
 * nothing here measures time. Without Chromium the suite fails with the install command.
 */
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../adapters/http/config.js';
import { buildServer, type FleetServer, listen } from '../../adapters/http/server.js';
import {
  type LaunchedBrowser,
  launchChromium,
  type PageProblems,
  watchedContext,
} from './browser.js';
import {
  type Caller,
  call,
  claim,
  heartbeat,
  moveTo,
  populate,
  release,
  submit,
} from './scenario.js';

const ADMIN = 'browser-admin-token';
/** One product per test that claims, so a claim takes that test's job and no other. */
const OWN = ['live', 'scrub'] as const;
const own = (name: (typeof OWN)[number]): Caller => ({ url, token: `browser-${name}-token` });
const READER = 'browser-reader-token';
const OTHER = 'browser-other-token';
const WAIT = 30_000;
const SHOTS = new URL('../../test-results/', import.meta.url).pathname;

let server: FleetServer;
let url: string;
let chrome: LaunchedBrowser;
let browser: Browser;
let admin: Caller;
let current: { problems: PageProblems; close(): Promise<void>; page: Page } | null = null;

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  const config = loadConfig({
    FLEET_STORE: 'memory',
    PORT: '0',
    FLEET_TOKENS: JSON.stringify([
      { token: ADMIN, productId: 'web', roles: ['admin'], subject: 'ops' },
      { token: READER, productId: 'web', roles: ['submitter'], subject: 'reader' },
      { token: OTHER, productId: 'elsewhere', roles: ['admin'], subject: 'them' },
      ...OWN.map((p) => ({ token: `browser-${p}-token`, productId: p, roles: ['admin'] })),
    ]),
  });
  server = await buildServer(config, { logger: false });
  url = await listen(server);
  admin = { url, token: ADMIN };
  chrome = await launchChromium();
  browser = chrome.browser;
}, 120_000);

afterAll(async () => {
  await chrome?.close();
  await server?.close();
});

/** A fresh browser context and page (token preset unless `token` is null). */
async function open(path: string, token: string | null = ADMIN): Promise<Page> {
  const ctx = await watchedContext(browser, token === null ? {} : { token });
  const page = await ctx.page();
  page.setDefaultTimeout(WAIT);
  current = { problems: ctx.problems, close: () => ctx.context.close(), page };
  await page.goto(`${url}${path}`);
  return page;
}

afterEach(async (test) => {
  if (!current) return;
  const { problems, page, close } = current;
  current = null;
  const name = test.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 80);
  await page.screenshot({ path: `${SHOTS}browser-${name}.png`, fullPage: true }).catch(() => {});
  await close();
  expect(problems.offline, 'requests that left 127.0.0.1').toEqual([]);
  expect(problems.csp, 'Content-Security-Policy reports').toEqual([]);
  expect(problems.errors, `page errors (console: ${problems.console.join(' | ')})`).toEqual([]);
});

const stateOf = (page: Page) =>
  page.locator('svg.chart [data-state].current').getAttribute('data-state');

describe('inspector in Chromium', { timeout: 120_000 }, () => {
  it('the overview shows the right counts on the chart and in the stage table', async () => {
    await populate(admin);
    const overview = await call<{ stages: Record<string, number> }>(
      admin,
      'GET',
      '/fleet/overview',
    );
    const page = await open('/');
    await expect.poll(() => page.url()).toMatch(/\/inspector$/);
    for (const [stage, n] of Object.entries(overview.stages)) {
      await page
        .locator(`[data-count-for="${stage}"]:not([display]) text`)
        .filter({ hasText: String(n) })
        .waitFor();
      await expect
        .poll(() => page.locator(`[data-stage-link="${stage}"]`).textContent())
        .toBe(String(n));
    }
    expect(overview.stages.queued).toBeGreaterThan(0);
    await page.locator('#factories tbody tr').first().waitFor();
    expect(await page.locator('#factories tbody tr').count()).toBe(2);
    await page.locator('#events tbody tr').first().waitFor();
    // A click on a state lists its jobs, the filter in the URL.
    await page.locator('svg.chart [data-state="queued"]').click();
    await page.waitForURL(/\/inspector\/jobs\?stage=queued$/);
    await page.locator('#jobs tbody tr').first().waitFor();
    const stages = await page.locator('#jobs tbody tr td:nth-child(2)').allTextContents();
    expect(stages.length).toBe(overview.stages.queued);
    expect(new Set(stages)).toEqual(new Set(['queued']));
  });

  it('a job page highlights the current state; a claim and moves made through the API move it live', async () => {
    const live = own('live');
    const job = await submit(live, 'live-1');
    const page = await open(`/inspector/jobs/${job.id}`, live.token);
    await page.locator('svg.chart [data-state="queued"].current').waitFor();
    await page.locator('#live[data-state="live"]').waitFor();
    const grant = await claim(live, 'f-live');
    expect(grant.jobId).toBe(job.id);
    await page.locator('svg.chart [data-state="assigned"].current').waitFor();
    await page.locator('[data-edge="queued->assigned"].taken.last').waitFor();
    await moveTo(live, grant, 'building');
    await page.locator('svg.chart [data-state="building"].current').waitFor();
    await page.locator('[data-edge="assigned->building"].taken.last').waitFor();
    expect(await page.locator('[data-edge="queued->assigned"]').getAttribute('class')).toMatch(
      /taken/,
    );
    expect(await page.locator('[data-edge="queued->assigned"]').getAttribute('class')).not.toMatch(
      /last/,
    );
    // Round a loop: the edge taken twice carries its count.
    await moveTo(live, grant, 'review');
    await moveTo(live, grant, 'building');
    await moveTo(live, grant, 'review');
    await page
      .locator('[data-edge-count="building->review"]:not([display]) text')
      .filter({ hasText: '×2' })
      .waitFor();
    expect(await stateOf(page)).toBe('review');
    await page.locator('#events tbody tr[data-seq="6"]').waitFor();
    await page.locator('#job-stage').filter({ hasText: 'review' }).waitFor();
  });

  it('the scrubber replays the path from the events, without calling the server', async () => {
    const scrub = own('scrub');
    const job = await submit(scrub, 'scrub-1');
    const g = await claim(scrub, 'f-scrub');
    expect(g.jobId).toBe(job.id);
    await moveTo(scrub, g, 'building');
    await moveTo(scrub, g, 'review');
    await release(scrub, g); // review → queued
    const page = await open(`/inspector/jobs/${job.id}`, scrub.token);
    await page.locator('#events tbody tr[data-seq="5"]').waitFor();
    await page.locator('svg.chart [data-state="queued"].current').waitFor();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const slider = page.locator('#step');
    await slider.fill('3'); // after seq 3: assigned → building
    await page.locator('svg.chart [data-state="building"].current').waitFor();
    expect(await page.locator('[data-edge="assigned->building"]').getAttribute('class')).toMatch(
      /last/,
    );
    expect(await page.locator('[data-edge="building->review"]').getAttribute('class')).not.toMatch(
      /taken/,
    );
    await page.locator('#step-back').click();
    await page.locator('svg.chart [data-state="assigned"].current').waitFor();
    await page.locator('#step-forward').click();
    await page.locator('#step-forward').click();
    await page.locator('svg.chart [data-state="review"].current').waitFor();
    expect(await page.locator('#step-text').textContent()).toMatch(/step 4 of 5/);
    await page.locator('#step-live').click();
    await page.locator('svg.chart [data-state="queued"].current').waitFor();
    expect(await page.locator('[data-edge="review->queued"]').getAttribute('class')).toMatch(
      /last/,
    );
    // The replay reads no events from the server (the page's periodic re-reads of the
    // job itself are not part of it).
    expect(requests.filter((r) => r.includes('/events') || r.includes('/fleet/stream'))).toEqual(
      [],
    );
  });

  it('a <script> in a job body (and key) renders as text', async () => {
    const evil = '# Hi <script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';
    const job = await submit(admin, `xss-${Date.now()}-<script>window.__pwned=3</script>`, {
      bodyMd: evil,
    });
    const page = await open(`/inspector/jobs/${job.id}`);
    await page.locator('#body').filter({ hasText: '<script>' }).waitFor();
    expect(await page.locator('#body').textContent()).toBe(evil);
    expect(await page.locator('#body script, #body img').count()).toBe(0);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    const list = await open(`/inspector/jobs?q=${encodeURIComponent('xss-')}`);
    await list.locator('#jobs tbody tr').first().waitFor();
    expect(await list.locator('#jobs tbody td.title').first().textContent()).toContain('<script>');
    expect(await list.evaluate('window.__pwned')).toBeUndefined();
  });

  it('an admin requeues a dead-lettered job from its page (with a confirmation); a reader cannot', async () => {
    const job = await submit(admin, `requeue-${Date.now()}`);
    await call(admin, 'POST', `/fleet/jobs/${job.id}/cancel`, { reason: 'test' });
    const page = await open(`/inspector/jobs/${job.id}`);
    await page.locator('svg.chart [data-state="dead_letter"].current').waitFor();
    await page.locator('#requeue').click();
    await page.locator('#confirm-dialog[open]').waitFor();
    await page.locator('#confirm-cancel').click();
    await page.locator('#confirm-dialog[open]').waitFor({ state: 'detached' });
    expect((await call<{ stage: string }>(admin, 'GET', `/fleet/jobs/${job.id}`)).stage).toBe(
      'dead_letter',
    );
    await page.locator('#requeue').click();
    await page.locator('#confirm-ok').click();
    await page.locator('svg.chart [data-state="queued"].current').waitFor();
    await page.locator('[data-edge="dead_letter->queued"].last').waitFor();
    expect((await call<{ stage: string }>(admin, 'GET', `/fleet/jobs/${job.id}`)).stage).toBe(
      'queued',
    );
    const reader = await open(`/inspector/jobs/${job.id}`, READER);
    await reader.locator('svg.chart [data-state="queued"].current').waitFor();
    expect(await reader.locator('#admin').isHidden()).toBe(true);
  });

  it('asks for the token, refuses a bad one, and asks again on a 401', async () => {
    const job = await submit(admin, `auth-${Date.now()}`);
    const page = await open(`/inspector/jobs/${job.id}`, null);
    await page.locator('#token-dialog[open]').waitFor();
    await page.locator('#token-input').fill('not-a-token');
    await page.locator('#token-form button[type="submit"]').click();
    await page.locator('#token-error').filter({ hasText: 'refused' }).waitFor();
    await page.locator('#token-input').fill(ADMIN);
    await page.locator('#token-form button[type="submit"]').click();
    await page.locator('svg.chart [data-state="queued"].current').waitFor();
    expect(page.url()).not.toContain(ADMIN); // never in a URL
    // A stored token the server no longer accepts: the next call's 401 asks again.
    const stale = await open('/inspector', 'revoked-token');
    await stale.locator('#token-dialog[open]').waitFor();
    await stale.locator('#token-error').filter({ hasText: '401' }).waitFor();
    await stale.locator('#token-input').fill(ADMIN);
    await stale.locator('#token-form button[type="submit"]').click();
    await stale.locator('#product').filter({ hasText: 'web' }).waitFor();
    // Another product's job is not found, exactly like a missing one.
    const foreign = await open(`/inspector/jobs/${job.id}`, OTHER);
    await foreign
      .locator('#page-error, #job-error')
      .filter({ hasText: 'no job' })
      .first()
      .waitFor();
  });

  it('the job list keeps filters in the URL and its live toggle across navigation', async () => {
    await heartbeat(admin, 'f-list');
    const page = await open('/inspector/jobs?stage=queued');
    await page.locator('#jobs tbody tr').first().waitFor();
    expect(await page.locator('#stage').inputValue()).toBe('queued');
    await page.locator('#live[data-state="live"]').waitFor();
    const before = await page.locator('#jobs tbody tr').count();
    const added = await submit(admin, `list-${Date.now()}`);
    await page.locator(`#jobs tbody tr[data-job="${added.id}"]`).waitFor();
    expect(await page.locator('#jobs tbody tr').count()).toBe(before + 1);
    await page.locator('#live-toggle').click();
    await page.locator('#live[data-state="paused"]').waitFor();
    await page.locator('#q').fill('list-');
    await page.locator('#filters button[type="submit"]').click();
    await page.waitForURL(/stage=queued&q=list-/);
    await page.locator('#live[data-state="paused"]').waitFor();
    expect(await page.locator('#live-toggle').getAttribute('aria-pressed')).toBe('false');
    await page.locator(`#jobs tbody tr[data-job="${added.id}"]`).waitFor();
  });

  it('draws the supervisor machine and serves the raw SVG', async () => {
    const page = await open('/inspector/machines/supervisor', null);
    for (const s of ['idle', 'sweeping', 'settled', 'stopped']) {
      await page.locator(`svg.chart [data-state="${s}"]`).waitFor();
    }
    await page.locator('svg.chart [data-state="sweeping"]').click();
    await page.locator('[data-edge="sweeping->settled"].taken').waitFor();
    const svg = await page.request.get(`${url}/inspector/machines/job.svg`);
    expect(svg.headers()['content-type']).toMatch(/image\/svg\+xml/);
    expect(await svg.text()).toContain('data-edge="testing-&gt;shipped"');
  });
});
