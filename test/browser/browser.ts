/**
 * Debian's Chromium driven by playwright-core, for the browser tests and the README
 * screenshot. Never a browser download: `/usr/bin/chromium` (or `FLEET_CHROMIUM`) must
 * exist, else {@link launchChromium} throws with the install command. Every page made
 * here is offline-checked: a request to any host but 127.0.0.1 is aborted and recorded,
 * and console messages about the Content-Security-Policy and page errors are recorded,
 * so a test can fail on any of them.
 */
import { existsSync } from 'node:fs';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

/** Where Chromium is expected. */
export const CHROMIUM = process.env.FLEET_CHROMIUM ?? '/usr/bin/chromium';

/** The flags of every launch (headless, no sandbox as root, nothing phoning home). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface LaunchedBrowser {
  browser: Browser;
  close(): Promise<void>;
}

/** Launches Chromium (playwright gives every launch a fresh, temporary profile). */
export async function launchChromium(): Promise<LaunchedBrowser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM}: the browser tests need Debian's chromium (apt-get update && apt-get install -y chromium; .ci/run does this), or FLEET_CHROMIUM=/path/to/chromium`,
    );
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: true,
    timeout: 60_000,
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

/** What went wrong on a page: requests that left 127.0.0.1, CSP reports, page errors. */
export interface PageProblems {
  offline: string[];
  csp: string[];
  errors: string[];
  /** Every console message (for failure output). */
  console: string[];
}

/** A context whose pages are watched; `problems` fills as they run. */
export async function watchedContext(
  browser: Browser,
  options: { viewport?: { width: number; height: number }; token?: string } = {},
): Promise<{ context: BrowserContext; problems: PageProblems; page(): Promise<Page> }> {
  const context = await browser.newContext({
    viewport: options.viewport ?? { width: 1440, height: 1000 },
    deviceScaleFactor: 1,
  });
  const problems: PageProblems = { offline: [], csp: [], errors: [], console: [] };
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.hostname === '127.0.0.1' || u.protocol === 'data:') return route.continue();
    problems.offline.push(route.request().url());
    return route.abort('blockedbyclient');
  });
  if (options.token !== undefined) {
    await context.addInitScript({
      content: `if (location.protocol === 'http:') sessionStorage.setItem('fleet.token', ${JSON.stringify(options.token)});`,
    });
  }
  const watch = (page: Page): void => {
    page.on('console', (m) => {
      const text = `${m.type()}: ${m.text()}`;
      problems.console.push(text);
      if (/content.security.policy|refused to (load|execute|apply)/i.test(m.text())) {
        problems.csp.push(text);
      }
    });
    page.on('pageerror', (e) => problems.errors.push(String(e)));
  };
  context.on('page', watch);
  return {
    context,
    problems,
    async page() {
      const p = await context.newPage();
      return p;
    },
  };
}
