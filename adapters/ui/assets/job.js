// /inspector/jobs/:id: one job, live. The job's event stream (from the store, resumed
// after the last seq on reconnect) drives everything: the chart traces every move the
// job made (counts on edges taken more than once, the last step emphasised), the step
// scrubber replays the path from the events already here (no server call), the event
// table shows the newest events (200 at a time: "load earlier" for more). Runs,
// artifacts and the header are re-read when the job changes.
import { Chart } from './chart.js';
import {
  ApiError,
  api,
  confirmAction,
  debounce,
  el,
  fill,
  fmtAge,
  fmtDateTime,
  fmtNum,
  fmtTime,
  fmtUsd,
  jobLink,
  LiveStream,
  move,
  stageBadge,
  whoAmI,
} from './common.js';

const PAGE = 200;
const id = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() ?? '');
const chart = new Chart(document.getElementById('chart'));
const events = [];
let job = null;
let etag = null;
let shown = PAGE;
/** Scrubber position: events[0..position) are replayed; following = stick to the latest. */
let position = 0;
let following = true;

fill(document.getElementById('job-id'), id);
document.title = `Job ${id} · Fleet inspector`;

const edgeOf = (e) => {
  if (e.type === 'submitted') return null;
  const from = e.data?.from;
  const to = e.data?.to;
  if (!from || !to) return null;
  const key = `${from}->${to}`;
  return chart.hasEdge(key) ? key : null;
};

// --- chart and scrubber ----------------------------------------------------------------

function renderPath() {
  const counts = new Map();
  let last = null;
  for (let i = 0; i < position; i++) {
    const key = edgeOf(events[i]);
    if (key === null) continue;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    last = key;
  }
  const at = position > 0 ? events[position - 1] : null;
  const current = at ? at.data?.to : (job?.stage ?? null);
  chart.setCurrent(current);
  chart.trace(counts, last);
  const slider = document.getElementById('step');
  slider.max = String(events.length);
  slider.min = String(events.length > 0 ? 1 : 0);
  slider.value = String(position);
  document.getElementById('scrubber').dataset.following = String(following);
  fill(
    document.getElementById('step-text'),
    at
      ? `step ${position} of ${events.length}: #${at.seq} ${at.type} ${move(at.data?.from, at.data?.to)} · ${fmtDateTime(at.at)}`
      : 'no events yet',
  );
  for (const row of document.querySelectorAll('#events tbody tr')) {
    row.classList.toggle('selected', at !== null && Number(row.dataset.seq) === at.seq);
  }
}

function goTo(p) {
  position = Math.max(events.length > 0 ? 1 : 0, Math.min(events.length, p));
  following = position === events.length;
  renderPath();
}
document.getElementById('step').addEventListener('input', (e) => goTo(Number(e.target.value)));
document.getElementById('step-back').addEventListener('click', () => goTo(position - 1));
document.getElementById('step-forward').addEventListener('click', () => goTo(position + 1));
document.getElementById('step-live').addEventListener('click', () => goTo(events.length));

// --- events table ----------------------------------------------------------------------

function renderEvents() {
  const start = Math.max(0, events.length - shown);
  const rows = [];
  for (let i = events.length - 1; i >= start; i--) {
    const e = events[i];
    const row = el(
      'tr',
      { dataset: { seq: String(e.seq) } },
      el('td', { className: 'num mono' }, String(e.seq)),
      el('td', { className: 'mono' }, fmtTime(e.at)),
      el('td', { className: 'mono' }, e.type),
      el('td', {}, move(e.data?.from, e.data?.to)),
      el('td', { className: 'mono' }, e.data?.factoryId ?? ''),
    );
    row.addEventListener('click', () => goTo(i + 1));
    rows.push(row);
  }
  fill(document.querySelector('#events tbody'), rows);
  const earlier = document.getElementById('load-earlier');
  earlier.hidden = start === 0;
  fill(earlier, `Load ${Math.min(PAGE, start)} earlier events (${start} not shown)`);
  fill(document.getElementById('events-count'), `${fmtNum(events.length)} events`);
}
document.getElementById('load-earlier').addEventListener('click', () => {
  shown += PAGE;
  renderEvents();
  renderPath();
});

let frame = null;
function scheduleRender() {
  if (frame !== null) return;
  frame = requestAnimationFrame(() => {
    frame = null;
    if (following) position = events.length;
    renderEvents();
    renderPath();
  });
}

// --- header, runs, artifacts -----------------------------------------------------------

const fact = (label, ...value) => [
  el('div', { className: 'fact' }, el('dt', {}, label), el('dd', {}, ...value)),
];

function budgetText(j) {
  const used = j.usage ?? {};
  const tokens = (used.tokensIn ?? 0) + (used.tokensOut ?? 0);
  const b = j.budget ?? {};
  const parts = [
    `tokens ${fmtNum(tokens)}${b.tokens !== undefined ? ` / ${fmtNum(b.tokens)}` : ''}`,
  ];
  parts.push(
    `cost ${fmtUsd(used.costUsd ?? 0)}${b.usd !== undefined ? ` / ${fmtUsd(b.usd)}` : ''}`,
  );
  if (b.wall !== undefined) {
    const since = j.firstClaimedAt ? Date.now() - Date.parse(j.firstClaimedAt) : 0;
    parts.push(`wall ${fmtAge(since)} / ${b.wall}`);
  }
  return parts.join(' · ');
}

function renderHeader() {
  if (!job) return;
  const stage = document.getElementById('job-stage');
  stage.className = `stage stage-${job.stage}`;
  fill(stage, job.stage);
  const lease = job.leaseExpiresAt
    ? `${fmtDateTime(job.leaseExpiresAt)} (${Date.parse(job.leaseExpiresAt) >= Date.now() ? 'in' : 'expired'} ${fmtAge(Date.parse(job.leaseExpiresAt) - Date.now())}${Date.parse(job.leaseExpiresAt) < Date.now() ? ' ago' : ''})`
    : '—';
  fill(
    document.getElementById('facts'),
    ...fact('stage', stageBadge(job.stage)),
    ...fact('holder', el('span', { className: 'mono' }, job.holderFactoryId ?? '—')),
    ...fact('lease epoch', String(job.leaseEpoch)),
    ...fact('attempt', `${job.attempt} (retries ${job.failures ?? 0} / ${job.retry?.max ?? '—'})`),
    ...fact('lease deadline', lease),
    ...fact('budget used', budgetText(job)),
    ...fact('priority', job.priority),
    ...fact('ETag', el('span', { className: 'mono' }, etag ?? '—')),
    ...fact('key', el('span', { className: 'mono' }, job.idempotencyKey)),
    ...fact('version', String(job.version)),
    ...fact('created', fmtDateTime(job.createdAt)),
    ...fact('updated', fmtDateTime(job.updatedAt)),
    ...(job.notBefore ? fact('not before', fmtDateTime(job.notBefore)) : []),
    ...(job.deadReason ? fact('dead reason', job.deadReason) : []),
    ...(job.lastError
      ? fact('last error', `${job.lastError.class}: ${job.lastError.message}`)
      : []),
    ...(job.capabilities?.length ? fact('capabilities', job.capabilities.join(', ')) : []),
  );
  const cp = job.checkpoint ?? {};
  const cpFacts = ['wipBranch', 'wipBase', 'wipCommit'].filter((k) => cp[k]);
  fill(
    document.getElementById('checkpoint'),
    ...(cpFacts.length === 0
      ? fact('checkpoint', 'none')
      : cpFacts.flatMap((k) => fact(k, el('span', { className: 'mono' }, cp[k])))),
  );
  fill(
    document.getElementById('deps'),
    job.deps.length === 0
      ? el('li', { className: 'hint' }, 'no dependencies')
      : job.deps.map((d) => el('li', {}, jobLink(d), ` (${job.depsMode})`)),
  );
  fill(document.getElementById('body'), job.bodyMd);
  if (events.length === 0) renderPath();
}

async function loadJob() {
  const res = await api(`/fleet/jobs/${encodeURIComponent(id)}`, { raw: true });
  etag = res.headers.get('etag');
  job = await res.json();
  renderHeader();
}

async function loadRuns() {
  const [runs, artifacts] = await Promise.all([
    api(`/fleet/jobs/${encodeURIComponent(id)}/runs?limit=500`),
    api(`/fleet/jobs/${encodeURIComponent(id)}/artifacts?limit=500`),
  ]);
  fill(
    document.querySelector('#runs tbody'),
    runs.items.map((r) =>
      el(
        'tr',
        {},
        el('td', { className: 'num' }, String(r.attempt)),
        el('td', { className: 'mono' }, r.factoryId ?? ''),
        el('td', { className: 'num' }, String(r.leaseEpoch)),
        el('td', {}, fmtDateTime(r.startedAt)),
        el('td', {}, r.exit ?? (r.endedAt ? 'ended' : 'running')),
        el(
          'td',
          { className: 'num' },
          fmtNum((r.insights?.tokensIn ?? 0) + (r.insights?.tokensOut ?? 0)),
        ),
        el('td', { className: 'num' }, fmtUsd(r.insights?.costUsd ?? 0)),
        el('td', { className: 'num' }, fmtNum(r.insights?.turns ?? 0)),
        el('td', { className: 'num' }, fmtNum(r.insights?.filesChanged ?? 0)),
      ),
    ),
  );
  document.getElementById('runs-empty').hidden = runs.items.length > 0;
  fill(
    document.querySelector('#artifacts tbody'),
    artifacts.items.map((a) =>
      el(
        'tr',
        {},
        el('td', {}, a.name),
        el('td', { className: 'mono' }, a.uri),
        el('td', {}, a.contentType ?? ''),
        el('td', { className: 'num' }, a.bytes === null ? '' : fmtNum(a.bytes)),
        el('td', { className: 'num' }, String(a.leaseEpoch)),
      ),
    ),
  );
  document.getElementById('artifacts-empty').hidden = artifacts.items.length > 0;
}

const refreshAll = debounce(() => {
  void loadJob().catch(showError);
  void loadRuns().catch(showError);
}, 200);

function showError(e) {
  const box = document.getElementById('job-error');
  box.hidden = false;
  fill(box, e instanceof ApiError ? (e.problem?.detail ?? e.message) : String(e));
}

// --- admin -----------------------------------------------------------------------------

async function adminAction(action, question) {
  const ok = await confirmAction(
    `${action[0].toUpperCase()}${action.slice(1)} this job?`,
    question,
    action,
  );
  if (!ok) return;
  const result = document.getElementById('admin-result');
  try {
    const body = action === 'cancel' ? { reason: 'cancelled from the inspector' } : {};
    await api(`/fleet/jobs/${encodeURIComponent(id)}/${action}`, { method: 'POST', body });
    fill(result, `${action} done`);
    refreshAll();
  } catch (e) {
    fill(result, e instanceof ApiError ? (e.problem?.detail ?? e.message) : String(e));
  }
}
document
  .getElementById('requeue')
  .addEventListener('click', () =>
    adminAction(
      'requeue',
      'It goes back to the queue (or blocked), with attempts and budget usage reset.',
    ),
  );
document
  .getElementById('cancel')
  .addEventListener('click', () =>
    adminAction(
      'cancel',
      'It goes to dead_letter (reason cancelled); a factory working on it is fenced out.',
    ),
  );

// --- start -----------------------------------------------------------------------------

const me = await whoAmI();
document.getElementById('admin').hidden = !me.roles.includes('admin');
let loaded = true;
try {
  await loadJob();
} catch (e) {
  showError(e);
  loaded = false;
}
if (loaded) start();

function start() {
  void loadRuns().catch(showError);
  setInterval(renderHeader, 1000);
  const stream = new LiveStream(`/fleet/stream?job=${encodeURIComponent(id)}`, {
    onEvent: (type, data) => {
      if (type === 'job-event') {
        // The stream resumes after the last seq, so an event never arrives twice; guard anyway.
        if (events.length > 0 && data.seq <= events[events.length - 1].seq) return;
        events.push(data);
        scheduleRender();
      } else if (type === 'job') {
        job = data;
        renderHeader();
        refreshAll();
      }
    },
    onError: showError,
  });
  stream.start();
}
