/**
 * Renders a {@link ChartLayout} as SVG text. The drawing is plain SVG with presentation
 * attributes, so it looks right on its own (`GET /inspector/machines/job.svg`, `fleet
 * machines --format svg`); inside the inspector, the stylesheet overrides those
 * attributes through classes to highlight states and edges. No inline `style`, no
 * script: the inspector's Content-Security-Policy allows neither.
 *
 * Hooks for the pages (stable; the tests rely on them):
 * - `<g data-state="S">`: one per state;
 * - `<g data-edge="FROM->TO">`: one per distinct (from, to) pair of the definition,
 *   self-loops included (drawn as a badge inside their state);
 * - `<g data-bundle="ID" data-members="A->T B->T">`: the shared trunk of bundled edges;
 * - `[data-count-for="S"]` (state count badge) and `[data-edge-count="FROM->TO"]` (how
 *   often a job took an edge), hidden until a page fills them.
 */
import {
  type ChartLayout,
  type ChartNode,
  type LabelBox,
  labelLines,
  loopText,
  METRICS,
  type Point,
} from './chart-layout.js';

const ESC: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for an XML attribute or text node. */
export const escapeXml = (s: string): string => s.replace(/[&<>"']/g, (c) => ESC[c]!);

const f = (n: number): string => String(Math.round(n * 10) / 10);

/** A smooth path through `points` (a uniform B-spline: starts and ends on the ends). */
export function smoothPath(points: readonly Point[]): string {
  if (points.length === 0) return '';
  const [first, ...rest] = points;
  let d = `M${f(first![0])},${f(first![1])}`;
  if (rest.length === 0) return d;
  if (points.length === 2) return `${d}L${f(rest[0]![0])},${f(rest[0]![1])}`;
  let [x0, y0] = first!;
  let [x1, y1] = points[1]!;
  d += `L${f((5 * x0 + x1) / 6)},${f((5 * y0 + y1) / 6)}`;
  const curve = (x: number, y: number): void => {
    d += `C${f((2 * x0 + x1) / 3)},${f((2 * y0 + y1) / 3)} ${f((x0 + 2 * x1) / 3)},${f((y0 + 2 * y1) / 3)} ${f((x0 + 4 * x1 + x) / 6)},${f((y0 + 4 * y1 + y) / 6)}`;
    x0 = x1;
    y0 = y1;
    x1 = x;
    y1 = y;
  };
  for (let i = 2; i < points.length; i++) curve(points[i]![0], points[i]![1]);
  curve(x1, y1);
  d += `L${f(x1)},${f(y1)}`;
  return d;
}

const COLORS = {
  node: '#f5f7fb',
  nodeStroke: '#51607a',
  text: '#1d2533',
  edge: '#8592a8',
  label: '#3d4a60',
  labelBg: '#ffffff',
  loop: '#e8ecf4',
  final: '#51607a',
  badge: '#2f6fde',
} as const;

function label(box: LabelBox, cls: string): string {
  const lines = labelLines(box.text.split(' · '));
  const top = box.y - box.height / 2;
  const texts = lines
    .map(
      (line, i) =>
        `<text x="${f(box.x)}" y="${f(top + 3 + (i + 0.78) * METRICS.labelLineHeight)}" text-anchor="middle" font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" font-size="11" fill="${COLORS.label}">${escapeXml(line)}</text>`,
    )
    .join('');
  return `<g class="${cls}"><rect x="${f(box.x - box.width / 2)}" y="${f(top)}" width="${f(box.width)}" height="${f(box.height)}" rx="4" fill="${COLORS.labelBg}" fill-opacity="0.92"/>${texts}</g>`;
}

function countBadge(attr: string, value: string, at: Point): string {
  return `<g class="count-badge" ${attr}="${escapeXml(value)}" display="none"><rect x="${f(at[0] - 14)}" y="${f(at[1] - 9)}" width="28" height="18" rx="9" fill="${COLORS.badge}"/><text x="${f(at[0])}" y="${f(at[1] + 4)}" text-anchor="middle" font-family="system-ui, sans-serif" font-size="11" font-weight="700" fill="#ffffff"></text></g>`;
}

function stateNode(n: ChartNode): string {
  const x = n.x - n.width / 2;
  const y = n.y - n.height / 2;
  const nameY = n.loop ? y + METRICS.padY + 14 : n.y + 5;
  const parts = [
    `<rect class="state-box" x="${f(x)}" y="${f(y)}" width="${f(n.width)}" height="${f(n.height)}" rx="10" fill="${COLORS.node}" stroke="${COLORS.nodeStroke}" stroke-width="1.5"${n.transient ? ' stroke-dasharray="5 4"' : ''}/>`,
  ];
  if (n.final) {
    parts.push(
      `<rect class="state-final" x="${f(x + 4)}" y="${f(y + 4)}" width="${f(n.width - 8)}" height="${f(n.height - 8)}" rx="7" fill="none" stroke="${COLORS.final}" stroke-width="1"/>`,
    );
  }
  parts.push(
    `<text class="state-name" x="${f(n.x)}" y="${f(nameY)}" text-anchor="middle" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="14" font-weight="600" fill="${COLORS.text}">${escapeXml(n.id)}</text>`,
  );
  if (n.loop) {
    const text = loopText(n.loop.events);
    const w = text.length * METRICS.loopCharWidth + 12;
    const ly = y + n.height - METRICS.padY - 14;
    parts.push(
      `<g class="loop" data-edge="${escapeXml(n.loop.key)}"><title>${escapeXml(`${n.id} → ${n.id}: ${n.loop.events.join(', ')} (the state is kept)`)}</title><rect class="loop-box" x="${f(n.x - w / 2)}" y="${f(ly - 2)}" width="${f(w)}" height="18" rx="9" fill="${COLORS.loop}"/><text x="${f(n.x)}" y="${f(ly + 11)}" text-anchor="middle" font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" font-size="10.5" fill="${COLORS.label}">${escapeXml(text)}</text>${countBadge('data-edge-count', n.loop.key, [n.x + w / 2 + 4, ly + 7])}</g>`,
    );
  }
  parts.push(countBadge('data-count-for', n.id, [x + n.width - 4, y + 2]));
  return `<g class="state${n.final ? ' final' : ''}${n.initial ? ' initial' : ''}" data-state="${escapeXml(n.id)}"><title>${escapeXml(n.id)}</title>${parts.join('')}</g>`;
}

/** The SVG document of a laid-out chart (an `<svg>` element, no XML prolog). */
export function renderChartSvg(layout: ChartLayout, options: { title?: string } = {}): string {
  const title = options.title ?? `${layout.machine} machine`;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 ${layout.width} ${layout.height}" width="${layout.width}" height="${layout.height}" role="img" aria-label="${escapeXml(title)}" data-machine="${escapeXml(layout.machine)}" data-version="${escapeXml(layout.version)}">`,
    `<title>${escapeXml(title)}</title>`,
    '<defs>',
    ...[
      ['arrow', COLORS.edge],
      ['arrow-taken', '#2f6fde'],
      ['arrow-last', '#e4572e'],
    ].map(
      ([id, color]) =>
        `<marker id="${id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="${color}"/></marker>`,
    ),
    '</defs>',
    `<rect class="chart-bg" x="0" y="0" width="${layout.width}" height="${layout.height}" fill="#ffffff"/>`,
  );
  out.push('<g class="edges">');
  if (layout.start) {
    const [x, y] = layout.start.dot;
    out.push(
      `<g class="start"><circle cx="${f(x)}" cy="${f(y)}" r="6" fill="${COLORS.nodeStroke}"/><path d="${smoothPath(layout.start.points)}" fill="none" stroke="${COLORS.nodeStroke}" stroke-width="1.5" marker-end="url(#arrow)"/></g>`,
    );
  }
  for (const b of layout.bundles) {
    out.push(
      `<g class="bundle" data-bundle="${escapeXml(b.id)}" data-members="${escapeXml(b.members.join(' '))}"><title>${escapeXml(`${b.members.map((m) => m.split('->')[0]).join(', ')} → ${b.to}: ${b.events.join(', ')}`)}</title><path class="edge-path" d="${smoothPath(b.points)}" fill="none" stroke="${COLORS.edge}" stroke-width="1.5" marker-end="url(#arrow)"/><circle class="junction" cx="${f(b.junction[0])}" cy="${f(b.junction[1])}" r="3.5" fill="${COLORS.edge}"/>${label(b.label, 'edge-label')}</g>`,
    );
  }
  for (const e of layout.edges) {
    const arrow = e.bundle ? '' : ' marker-end="url(#arrow)"';
    out.push(
      `<g class="edge${e.bundle ? ' bundled' : ''}" data-edge="${escapeXml(e.key)}"${e.bundle ? ` data-bundle-of="${escapeXml(e.bundle)}"` : ''}><title>${escapeXml(`${e.from} → ${e.to}: ${e.events.join(', ')}`)}</title><path class="edge-hit" d="${smoothPath(e.points)}" fill="none" stroke="transparent" stroke-width="10"/><path class="edge-path" d="${smoothPath(e.points)}" fill="none" stroke="${COLORS.edge}" stroke-width="1.5"${arrow}/>${e.label ? label(e.label, 'edge-label') : ''}${countBadge('data-edge-count', e.key, e.badge)}</g>`,
    );
  }
  out.push('</g><g class="nodes">');
  for (const n of layout.nodes) out.push(stateNode(n));
  out.push('</g></svg>');
  return out.join('');
}
