/**
 * The inspector's pages as HTML documents. They hold no product data: each page is a
 * shell (layout, the machine's chart, empty tables) that its script fills from the JSON
 * API with the caller's token, writing data as text only. The only markup generated
 * here from values is escaped (the base path, the machine's own names).
 *
 * Every page loads `inspector.css` and one module script from `/inspector/assets/`; no
 * inline script or style, so the pages run under a strict Content-Security-Policy.
 */
import { escapeXml } from './chart-svg.js';
import { graphEdges } from './machine-graph.js';
import { INSPECTOR_MACHINES, type MachineName, machineChart } from './machines.js';

/** Page names (also the `data-page` of `<body>`). */
export type PageName = 'overview' | 'jobs' | 'job' | 'machine';

export interface PageOptions {
  /** The plugin's prefix ('' on the standalone server); every URL of the page starts with it. */
  base: string;
}

const e = escapeXml;

function nav(base: string, page: PageName, machine?: MachineName): string {
  const link = (href: string, text: string, current: boolean): string =>
    `<a href="${e(base + href)}"${current ? ' aria-current="page"' : ''}>${e(text)}</a>`;
  return [
    link('/inspector', 'Overview', page === 'overview'),
    link('/inspector/jobs', 'Jobs', page === 'jobs' || page === 'job'),
    ...(Object.keys(INSPECTOR_MACHINES) as MachineName[]).map((m) =>
      link(`/inspector/machines/${m}`, `${m} machine`, page === 'machine' && machine === m),
    ),
  ].join('');
}

function layout(
  o: PageOptions & { page: PageName; title: string; script: string; machine?: MachineName },
  main: string,
): string {
  const asset = (name: string): string => e(`${o.base}/inspector/assets/${name}`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="fleet-base" content="${e(o.base)}">
<title>${e(o.title)} · Fleet inspector</title>
<link rel="stylesheet" href="${asset('inspector.css')}">
<link rel="icon" href="${asset('favicon.svg')}" type="image/svg+xml">
<script type="module" src="${asset(o.script)}"></script>
</head>
<body data-page="${o.page}">
<header class="top">
<a class="brand" href="${e(`${o.base}/inspector`)}">Fleet <span>inspector</span></a>
<nav>${nav(o.base, o.page, o.machine)}</nav>
<div class="session">
<span class="who" id="who"></span>
<span class="live" id="live" data-state="idle" title="Live updates"><span class="dot"></span><span class="text">not connected</span></span>
<button type="button" class="quiet" id="change-token">Token…</button>
</div>
</header>
<main>
<p class="error" id="page-error" role="alert" hidden></p>
${main}
</main>
<dialog id="token-dialog" aria-labelledby="token-title">
<form id="token-form" method="dialog">
<h2 id="token-title">Bearer token</h2>
<p>The inspector reads Fleet’s API with your token. It stays in this tab (sessionStorage) and is never put in a URL.</p>
<p class="error" id="token-error" hidden></p>
<label>Token <input type="password" id="token-input" name="token" autocomplete="off" spellcheck="false" required></label>
<div class="actions"><button type="submit" class="primary">Use token</button></div>
</form>
</dialog>
<dialog id="confirm-dialog" aria-labelledby="confirm-title">
<form id="confirm-form" method="dialog">
<h2 id="confirm-title">Are you sure?</h2>
<p id="confirm-text"></p>
<div class="actions"><button type="button" id="confirm-cancel">Keep it</button><button type="submit" class="danger" id="confirm-ok">Yes</button></div>
</form>
</dialog>
</body>
</html>
`;
}

const STAGE_ROWS = (): string =>
  machineChart('job')
    .graph.states.map(
      (s) =>
        `<tr data-stage="${e(s.id)}"><th scope="row"><span class="stage stage-${e(s.id)}">${e(s.id)}</span></th><td class="num"><a class="count" data-stage-link="${e(s.id)}">–</a></td></tr>`,
    )
    .join('');

/** `/inspector`: the job machine with live counts, stages, throughput, factories, events. */
export function overviewPage(o: PageOptions): string {
  const chart = machineChart('job');
  return layout(
    { ...o, page: 'overview', title: 'Overview', script: 'overview.js' },
    `<h1>Overview <span class="product" id="product"></span></h1>
<section class="panel chart-panel" aria-label="Job machine">
<div class="panel-head"><h2>Jobs by state</h2><span class="hint">counts per state, live · click a state to list its jobs</span></div>
<div class="chart-scroll" id="chart">${chart.svg}</div>
</section>
<div class="grid">
<section class="panel" aria-label="Stages">
<div class="panel-head"><h2>Stages</h2><span class="hint" id="total"></span></div>
<table class="stages"><tbody>${STAGE_ROWS()}</tbody></table>
</section>
<section class="panel" aria-label="Throughput">
<div class="panel-head"><h2>Throughput</h2><span class="hint">per minute, last hour (this server process)</span></div>
<div class="spark" id="claims"><div class="spark-head"><span>Claims</span><strong class="spark-total">–</strong></div><svg class="spark-svg" viewBox="0 0 300 60" preserveAspectRatio="none" aria-hidden="true"></svg></div>
<div class="spark" id="ships"><div class="spark-head"><span>Shipped</span><strong class="spark-total">–</strong></div><svg class="spark-svg" viewBox="0 0 300 60" preserveAspectRatio="none" aria-hidden="true"></svg></div>
</section>
</div>
<section class="panel" aria-label="Factories">
<div class="panel-head"><h2>Factories</h2><span class="hint" id="factory-counts"></span></div>
<table class="list" id="factories"><thead><tr><th>factory</th><th>status</th><th>reported</th><th>last heartbeat</th><th class="num">load</th><th class="num">seats</th><th>capabilities</th></tr></thead><tbody></tbody></table>
<p class="empty" id="factories-empty" hidden>No factory has sent a heartbeat.</p>
<details id="lost-factories" hidden><summary></summary><table class="list"><thead><tr><th>factory</th><th>last heartbeat</th><th>capabilities</th></tr></thead><tbody></tbody></table></details>
</section>
<section class="panel" aria-label="Recent events">
<div class="panel-head"><h2>Recent events</h2><span class="hint">newest first</span></div>
<table class="list" id="events"><thead><tr><th>time</th><th>job</th><th>event</th><th>move</th><th>factory</th></tr></thead><tbody></tbody></table>
<p class="empty" id="events-empty" hidden>No events yet.</p>
</section>`,
  );
}

/** `/inspector/jobs?stage=&q=&cursor=`: the job list. */
export function jobsPage(o: PageOptions): string {
  const options = machineChart('job')
    .graph.states.map((s) => `<option value="${e(s.id)}">${e(s.id)}</option>`)
    .join('');
  return layout(
    { ...o, page: 'jobs', title: 'Jobs', script: 'jobs.js' },
    `<h1>Jobs</h1>
<form class="filters" id="filters" role="search">
<label>Stage <select name="stage" id="stage"><option value="">any</option>${options}</select></label>
<label>Search <input type="search" name="q" id="q" placeholder="id or key on this page" autocomplete="off"></label>
<button type="submit">Apply</button>
<button type="button" class="live-toggle" id="live-toggle" aria-pressed="true">Live</button>
</form>
<section class="panel">
<table class="list" id="jobs"><thead><tr><th>job</th><th>stage</th><th>priority</th><th class="num">attempt</th><th>holder</th><th>updated</th><th>key</th></tr></thead><tbody></tbody></table>
<p class="empty" id="jobs-empty" hidden>No jobs match.</p>
<div class="pager"><a id="first-page" hidden>« First page</a><span class="hint" id="page-info"></span><a id="next-page" hidden>Next page »</a></div>
</section>`,
  );
}

/** `/inspector/jobs/:id`: one job, its path through the machine, live. */
export function jobPage(o: PageOptions): string {
  const chart = machineChart('job');
  return layout(
    { ...o, page: 'job', title: 'Job', script: 'job.js' },
    `<h1><span class="hint">Job</span> <span id="job-id" class="mono"></span> <span class="stage" id="job-stage"></span></h1>
<p class="error" id="job-error" hidden></p>
<section class="panel header-panel" aria-label="Job">
<dl class="facts" id="facts"></dl>
<div class="admin" id="admin" hidden><button type="button" id="requeue">Requeue…</button><button type="button" class="danger" id="cancel">Cancel…</button><span class="hint" id="admin-result"></span></div>
</section>
<section class="panel chart-panel" aria-label="Path through the job machine">
<div class="panel-head"><h2>Path</h2><span class="hint">current state highlighted · taken edges traced with counts · last step in orange</span></div>
<div class="chart-scroll" id="chart">${chart.svg}</div>
<div class="scrubber" id="scrubber">
<button type="button" id="step-back" aria-label="Previous step">◀</button>
<input type="range" id="step" min="0" max="0" value="0" aria-label="Step">
<button type="button" id="step-forward" aria-label="Next step">▶</button>
<button type="button" id="step-live" class="quiet">Latest</button>
<span class="step-text" id="step-text"></span>
</div>
</section>
<div class="grid">
<section class="panel" aria-label="Events">
<div class="panel-head"><h2>Events</h2><span class="hint" id="events-count"></span></div>
<table class="list" id="events"><thead><tr><th class="num">seq</th><th>time</th><th>event</th><th>move</th><th>factory</th></tr></thead><tbody></tbody></table>
<button type="button" id="load-earlier" hidden>Load earlier events</button>
</section>
<div>
<section class="panel" aria-label="Runs">
<div class="panel-head"><h2>Runs</h2></div>
<table class="list" id="runs"><thead><tr><th class="num">#</th><th>factory</th><th class="num">epoch</th><th>started</th><th>exit</th><th class="num">tokens</th><th class="num">cost</th><th class="num">turns</th><th class="num">files</th></tr></thead><tbody></tbody></table>
<p class="empty" id="runs-empty" hidden>Not claimed yet.</p>
</section>
<section class="panel" aria-label="Checkpoint and dependencies">
<div class="panel-head"><h2>Checkpoint</h2></div>
<dl class="facts" id="checkpoint"></dl>
<div class="panel-head"><h2>Depends on</h2></div>
<ul class="deps" id="deps"></ul>
</section>
<section class="panel" aria-label="Artifacts">
<div class="panel-head"><h2>Artifacts</h2></div>
<table class="list" id="artifacts"><thead><tr><th>name</th><th>uri</th><th>type</th><th class="num">bytes</th><th class="num">epoch</th></tr></thead><tbody></tbody></table>
<p class="empty" id="artifacts-empty" hidden>None.</p>
</section>
</div>
</div>
<section class="panel" aria-label="Instructions">
<div class="panel-head"><h2>Instructions</h2><span class="hint">bodyMd, as text</span></div>
<pre class="body" id="body"></pre>
</section>`,
  );
}

/** `/inspector/machines/:name`: a machine's chart and its transition table. */
export function machinePage(o: PageOptions, name: MachineName): string {
  const chart = machineChart(name);
  const rows = chart.graph.transitions
    .map(
      (t) =>
        `<tr data-edge-row="${e(`${t.from}->${t.to}`)}"><td><span class="stage">${e(t.from)}</span></td><td class="mono">${e(t.event)}</td><td class="mono">${t.guard === null ? '' : e(t.guard)}</td><td><span class="stage">${e(t.targetless ? `${t.to} (stays)` : t.to)}</span></td><td class="mono">${e(t.actions.join(', '))}</td></tr>`,
    )
    .join('');
  const edges = graphEdges(chart.graph).length;
  return layout(
    { ...o, page: 'machine', title: chart.title, script: 'machine.js', machine: name },
    `<h1>${e(chart.title)}</h1>
<p class="hint">Generated from <code>machines/${e(name)}.machine.ts</code>: ${chart.graph.states.length} states, ${edges} distinct moves, ${chart.graph.transitions.length} transition branches. Moves that keep the state are badges (↻); moves that several states share into one target meet at a dot. Hover an edge for its events. Raw: <a href="${e(`${o.base}/inspector/machines/${name}.svg`)}">SVG</a>, or <code>fleet machines --machine ${e(name)} --format mermaid|scxml|json</code>.</p>
<section class="panel chart-panel"><div class="chart-scroll" id="chart">${chart.svg}</div></section>
<section class="panel"><div class="panel-head"><h2>Transitions</h2></div>
<table class="list"><thead><tr><th>from</th><th>event</th><th>guard</th><th>to</th><th>actions</th></tr></thead><tbody>${rows}</tbody></table>
</section>`,
  );
}
