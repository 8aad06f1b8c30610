/**
 * Regenerates the README's screenshots of the inspector (`docs/inspector-job.png`,
 * `docs/inspector-overview.png`): starts a Fleet server in this process (memory store,
 * a throw-away token), gives it some history over HTTP (test/browser/scenario.ts), and
 * photographs the pages in Debian's Chromium (offline: nothing leaves 127.0.0.1).
 *
 *   npx tsx scripts/screenshot.ts            (npm run docs:screenshot)
 */
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../adapters/http/config.js';
import { buildServer, listen } from '../adapters/http/server.js';
import { launchChromium, watchedContext } from '../test/browser/browser.js';
import { populate } from '../test/browser/scenario.js';

const TOKEN = `fleet_screenshot_${process.pid}`;
const out = (name: string): string => fileURLToPath(new URL(`../docs/${name}`, import.meta.url));

const config = loadConfig({
  FLEET_STORE: 'memory',
  PORT: '0',
  FLEET_TOKENS: JSON.stringify([
    { token: TOKEN, productId: 'acme-web', roles: ['admin'], subject: 'ops' },
  ]),
});
const server = await buildServer(config, { logger: false });
const url = await listen(server);
const chrome = await launchChromium();
try {
  const { showcase } = await populate({ url, token: TOKEN });
  const {
    context,
    problems,
    page: newPage,
  } = await watchedContext(chrome.browser, {
    token: TOKEN,
    viewport: { width: 1500, height: 1000 },
  });
  const page = await newPage();
  await page.goto(`${url}/inspector/jobs/${encodeURIComponent(showcase)}`);
  await page.locator('svg.chart [data-state="testing"].current').waitFor();
  await page.locator('#live[data-state="live"]').waitFor();
  await page.locator('#runs tbody tr').nth(1).waitFor();
  await page.screenshot({ path: out('inspector-job.png'), fullPage: true });
  await page.goto(`${url}/inspector`);
  await page.locator('[data-count-for="queued"]:not([display])').waitFor();
  await page.screenshot({ path: out('inspector-overview.png'), fullPage: true });
  await context.close();
  const bad = [...problems.offline, ...problems.csp, ...problems.errors];
  if (bad.length > 0) throw new Error(`the pages misbehaved:\n${bad.join('\n')}`);
  process.stdout.write(`wrote ${out('inspector-job.png')} and ${out('inspector-overview.png')}\n`);
} finally {
  await chrome.close();
  await server.close();
}
