// /inspector: the job machine with a live count per state, the stage table, throughput,
// factories and the latest events. Refreshes on every event of the product's stream
// (coalesced) and every 15 s (factories age; other server processes write too).
import { Chart } from './chart.js';
import {
  api,
  debounce,
  el,
  fill,
  fmtAge,
  fmtNum,
  fmtTime,
  jobLink,
  LiveStream,
  move,
  notify,
  problemText,
  url,
  whoAmI,
} from './common.js';

const chart = new Chart(document.getElementById('chart'));
chart.onStateClick((stage) => {
  location.assign(url(`/inspector/jobs?stage=${encodeURIComponent(stage)}`));
});
for (const a of document.querySelectorAll('[data-stage-link]')) {
  a.href = url(`/inspector/jobs?stage=${encodeURIComponent(a.dataset.stageLink)}`);
}

const SVG = 'http://www.w3.org/2000/svg';

function spark(id, values, total) {
  const box = document.getElementById(id);
  fill(box.querySelector('.spark-total'), `${fmtNum(total)} in the last hour`);
  const svg = box.querySelector('svg');
  const max = Math.max(1, ...values);
  const w = 300 / values.length;
  const bars = values.map((v, i) => {
    const h = (v / max) * 56;
    const r = document.createElementNS(SVG, 'rect');
    r.setAttribute('x', String(i * w + 0.5));
    r.setAttribute('width', String(Math.max(1, w - 1)));
    r.setAttribute('y', String(60 - h));
    r.setAttribute('height', String(h));
    r.setAttribute('class', v > 0 ? 'bar' : 'bar zero');
    const title = document.createElementNS(SVG, 'title');
    title.textContent = `${v} in minute ${i - values.length + 1 || 'now'}`;
    r.append(title);
    return r;
  });
  svg.replaceChildren(...bars);
}

function eventRow(e) {
  return el(
    'tr',
    {},
    el('td', { className: 'mono' }, fmtTime(e.at)),
    el('td', {}, jobLink(e.jobId)),
    el('td', { className: 'mono' }, e.type),
    el('td', {}, move(e.from, e.to)),
    el('td', { className: 'mono' }, e.factoryId ?? ''),
  );
}

let recent = [];

function renderEvents() {
  const body = document.querySelector('#events tbody');
  fill(body, recent.map(eventRow));
  document.getElementById('events-empty').hidden = recent.length > 0;
}

function render(o) {
  fill(document.getElementById('product'), o.productId);
  fill(document.getElementById('total'), `${fmtNum(o.totalJobs)} jobs`);
  for (const [stage, n] of Object.entries(o.stages)) {
    chart.setCount(stage, n);
    const a = document.querySelector(`[data-stage-link="${CSS.escape(stage)}"]`);
    if (a) fill(a, fmtNum(n));
  }
  spark('claims', o.throughput.claims, o.throughput.totalClaims);
  spark('ships', o.throughput.ships, o.throughput.totalShips);

  const live = o.factories.items.filter((f) => f.status !== 'lost');
  const lost = o.factories.items.filter((f) => f.status === 'lost');
  const c = o.factories.counts;
  fill(
    document.getElementById('factory-counts'),
    `${c.ok} ok · ${c.stale} stale · ${c.lost} lost${o.factories.truncated ? ' (first 200 listed)' : ''}`,
  );
  fill(
    document.querySelector('#factories tbody'),
    live.map((f) =>
      el(
        'tr',
        { dataset: { factory: f.factoryId } },
        el('td', { className: 'mono' }, f.factoryId),
        el('td', {}, el('span', { className: `health health-${f.status}` }, f.status)),
        el('td', {}, f.health),
        el('td', {}, `${fmtAge(f.ageMs)} ago`),
        el('td', { className: 'num' }, fmtNum(f.load)),
        el('td', { className: 'num' }, `${f.seatsHeld} / ${f.seatLimit ?? '∞'}`),
        el('td', { className: 'mono' }, f.capabilities.join(', ')),
      ),
    ),
  );
  document.getElementById('factories-empty').hidden = o.factories.items.length > 0;
  const details = document.getElementById('lost-factories');
  details.hidden = lost.length === 0;
  fill(
    details.querySelector('summary'),
    `${lost.length} lost ${lost.length === 1 ? 'factory' : 'factories'} (no heartbeat for 30 intervals)`,
  );
  fill(
    details.querySelector('tbody'),
    lost.map((f) =>
      el(
        'tr',
        {},
        el('td', { className: 'mono' }, f.factoryId),
        el('td', {}, `${fmtAge(f.ageMs)} ago`),
        el('td', { className: 'mono' }, f.capabilities.join(', ')),
      ),
    ),
  );
  recent = o.recentEvents;
  renderEvents();
}

async function refresh() {
  try {
    render(await api('/fleet/overview'));
    notify(null);
  } catch (e) {
    notify(`Could not refresh the overview: ${problemText(e)}`);
  }
}
const soon = debounce(refresh, 300);

await whoAmI();
await refresh();
const stream = new LiveStream('/fleet/stream', {
  onEvent: (type, data) => {
    if (type === 'job-event') {
      recent = [data, ...recent].slice(0, 25);
      renderEvents();
      soon();
    } else if (type === 'reset') soon();
  },
});
stream.start();
setInterval(refresh, 15_000);
