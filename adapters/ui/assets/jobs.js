// /inspector/jobs?stage=&q=&cursor=: the product's jobs, newest first. Filters and the
// page cursor live in the URL (a link reproduces the view); `q` filters the rows of the
// page by id or idempotency key. The live toggle (kept in sessionStorage, so it
// survives navigation) refreshes the page on every event of the product's stream.
import {
  api,
  debounce,
  el,
  fill,
  fmtDateTime,
  jobLink,
  LiveStream,
  notify,
  problemText,
  setLive,
  stageBadge,
  url,
  whoAmI,
} from './common.js';

const LIVE_KEY = 'fleet.live';
const params = new URLSearchParams(location.search);
const stage = params.get('stage') ?? '';
const q = (params.get('q') ?? '').trim();
const cursor = params.get('cursor');

const form = document.getElementById('filters');
document.getElementById('stage').value = stage;
document.getElementById('q').value = q;

/** The URL of this list with `changes` applied (empty values dropped). */
function listUrl(changes) {
  const p = new URLSearchParams();
  const next = { stage, q, cursor, ...changes };
  for (const [k, v] of Object.entries(next)) if (v) p.set(k, v);
  const s = p.toString();
  return url(`/inspector/jobs${s ? `?${s}` : ''}`);
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  location.assign(
    listUrl({
      stage: document.getElementById('stage').value,
      q: document.getElementById('q').value.trim(),
      cursor: null,
    }),
  );
});

// Lists are summaries (no body: see the API's `view`), so a job is named by the
// idempotency key its submitter chose.
function matches(job) {
  if (q === '') return true;
  const needle = q.toLowerCase();
  return [job.id, job.idempotencyKey].some((s) => (s ?? '').toLowerCase().includes(needle));
}

async function load() {
  const p = new URLSearchParams({ limit: '50' });
  if (stage) p.set('stage', stage);
  if (cursor) p.set('cursor', cursor);
  const page = await api(`/fleet/jobs?${p}`);
  const rows = page.items.filter(matches);
  fill(
    document.querySelector('#jobs tbody'),
    rows.map((j) =>
      el(
        'tr',
        { dataset: { job: j.id } },
        el('td', {}, jobLink(j.id)),
        el('td', {}, stageBadge(j.stage)),
        el('td', {}, j.priority),
        el('td', { className: 'num' }, String(j.attempt)),
        el('td', { className: 'mono' }, j.holderFactoryId ?? ''),
        el('td', {}, fmtDateTime(j.updatedAt)),
        el('td', { className: 'title' }, j.idempotencyKey),
      ),
    ),
  );
  document.getElementById('jobs-empty').hidden = rows.length > 0;
  const next = document.getElementById('next-page');
  next.hidden = page.nextCursor === null;
  if (page.nextCursor !== null) next.href = listUrl({ cursor: page.nextCursor });
  const first = document.getElementById('first-page');
  first.hidden = !cursor;
  first.href = listUrl({ cursor: null });
  fill(
    document.getElementById('page-info'),
    q === ''
      ? `${page.items.length} jobs on this page`
      : `${rows.length} of ${page.items.length} jobs on this page match “${q}”`,
  );
}

const toggle = document.getElementById('live-toggle');
const stream = new LiveStream('/fleet/stream', {
  onEvent: (type) => {
    if (type === 'job-event' || type === 'reset') soon();
  },
});
const soon = debounce(
  () =>
    void load().then(
      () => notify(null),
      (e) => notify(`Could not refresh the list: ${problemText(e)}`),
    ),
  300,
);

function applyLive(on) {
  sessionStorage.setItem(LIVE_KEY, on ? 'on' : 'off');
  toggle.setAttribute('aria-pressed', String(on));
  fill(toggle, on ? 'Pause' : 'Resume live');
  if (on) stream.start();
  else stream.stop();
}
toggle.addEventListener('click', () => applyLive(sessionStorage.getItem(LIVE_KEY) === 'off'));

await whoAmI();
await load();
applyLive(sessionStorage.getItem(LIVE_KEY) !== 'off');
if (sessionStorage.getItem(LIVE_KEY) === 'off') setLive('paused');
