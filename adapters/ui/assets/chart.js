// The statechart drawn by the server (an inline <svg> with data-state / data-edge
// hooks): highlight the current state, trace taken edges with counts, show per-state
// counts. Only classes, attributes and textContent change; the drawing is never rebuilt.

export class Chart {
  constructor(root) {
    this.svg = root.querySelector('svg.chart');
    this.states = new Map(
      [...this.svg.querySelectorAll('[data-state]')].map((n) => [n.dataset.state, n]),
    );
    this.edges = new Map(
      [...this.svg.querySelectorAll('[data-edge]')].map((n) => [n.dataset.edge, n]),
    );
    this.bundles = [...this.svg.querySelectorAll('[data-bundle]')].map((n) => ({
      node: n,
      members: (n.dataset.members ?? '').split(' ').filter(Boolean),
    }));
  }

  /** True when the chart draws the move `key` (`from->to`). */
  hasEdge(key) {
    return this.edges.has(key);
  }

  /** Shows `n` in the badge of state `s` (a count per state). */
  setCount(state, n) {
    const badge = this.svg.querySelector(`[data-count-for="${CSS.escape(state)}"]`);
    if (!badge) return;
    badge.removeAttribute('display');
    const text = String(n);
    const rect = badge.querySelector('rect');
    const width = Math.max(28, 10 + text.length * 7.5);
    const right = Number(rect.getAttribute('x')) + Number(rect.getAttribute('width'));
    rect.setAttribute('x', String(right - width));
    rect.setAttribute('width', String(width));
    const label = badge.querySelector('text');
    label.setAttribute('x', String(right - width / 2));
    label.textContent = text;
    badge.classList.toggle('zero', n === 0);
  }

  /** Marks `state` as the current one (null: none). */
  setCurrent(state) {
    for (const [id, node] of this.states) node.classList.toggle('current', id === state);
  }

  /**
   * Traces taken edges: `counts` maps `from->to` to how often it was taken; `last` is
   * the latest step's edge (emphasised). Counts above 1 are shown on the edge.
   */
  trace(counts, last) {
    for (const [key, node] of this.edges) {
      const n = counts.get(key) ?? 0;
      node.classList.toggle('taken', n > 0);
      node.classList.toggle('last', key === last);
      const badge = node.querySelector(`[data-edge-count="${CSS.escape(key)}"]`);
      if (badge) {
        if (n > 1) {
          badge.removeAttribute('display');
          badge.querySelector('text').textContent = `×${n}`;
        } else badge.setAttribute('display', 'none');
      }
    }
    for (const b of this.bundles) {
      b.node.classList.toggle(
        'taken',
        b.members.some((m) => (counts.get(m) ?? 0) > 0),
      );
      b.node.classList.toggle('last', b.members.includes(last));
    }
    this.svg.classList.toggle('tracing', counts.size > 0);
  }

  /** Calls `fn(state)` when a state is clicked. */
  onStateClick(fn) {
    for (const [id, node] of this.states) {
      node.classList.add('clickable');
      node.addEventListener('click', () => fn(id));
    }
  }

  /** Scrolls the chart's container so `state` is visible. */
  reveal(state) {
    const node = this.states.get(state);
    const scroller = this.svg.parentElement;
    if (!node || !scroller) return;
    const box = node.getBBox();
    const scale = this.svg.clientWidth / this.svg.viewBox.baseVal.width || 1;
    const x = box.x * scale;
    if (
      x < scroller.scrollLeft ||
      x + box.width * scale > scroller.scrollLeft + scroller.clientWidth
    ) {
      scroller.scrollLeft = Math.max(0, x - scroller.clientWidth / 3);
    }
  }
}
