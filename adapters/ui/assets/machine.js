// /inspector/machines/:name: the chart is static; clicking a state highlights it, the
// moves out of it and their rows in the transition table.
import { Chart } from './chart.js';
import { setLive } from './common.js';

const chart = new Chart(document.getElementById('chart'));
setLive('idle');
chart.onStateClick((state) => {
  chart.setCurrent(state);
  const out = new Map();
  for (const key of chart.edges.keys()) if (key.startsWith(`${state}->`)) out.set(key, 1);
  chart.trace(out, null);
  for (const row of document.querySelectorAll('[data-edge-row]')) {
    row.classList.toggle('selected', row.dataset.edgeRow.startsWith(`${state}->`));
  }
});
