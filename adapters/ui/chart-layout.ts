/**
 * Lays a {@link MachineGraph} out as a statechart with dagre (server side, once per
 * machine version; see {@link chartLayout}'s cache).
 *
 * Readability rules, all derived from the definition (nothing is placed by hand):
 * - **Self-loops** (a targetless or self-targeting transition such as RENEW and RECORD)
 *   are not drawn as loops but as a badge inside their state (`↻ RENEW · RECORD`).
 * - **Bundles**: when three or more states go to the same target on the same events
 *   (every active stage → `dead_letter` on FAIL, LEASE_EXPIRED, CANCEL...), their edges
 *   meet at a junction near the target and one labelled trunk goes on from there, so
 *   the label is written once instead of once per source. Each source still has its own
 *   branch (its own `data-edge`), so a job's taken edge stays identifiable.
 * - Labels are sized from their text (an estimate per character: the server has no
 *   fonts), so the drawing needs no measuring in the browser.
 */
import dagre from '@dagrejs/dagre';
import { edgeKey, type GraphEdge, graphEdges, type MachineGraph } from './machine-graph.js';

/** A point of the drawing, in px. */
export type Point = readonly [x: number, y: number];

/** A text box of the drawing (centre and size). */
export interface LabelBox {
  readonly text: string;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface ChartNode {
  readonly id: string;
  /** Centre. */
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly initial: boolean;
  readonly final: boolean;
  readonly transient: boolean;
  /** The self-loop badge (events that leave the state where it is), or null. */
  readonly loop: { readonly key: string; readonly events: readonly string[] } | null;
}

export interface ChartEdge {
  /** `from->to`. */
  readonly key: string;
  readonly from: string;
  readonly to: string;
  readonly events: readonly string[];
  /** The route from the source's border to the target's (or to the bundle's junction). */
  readonly points: readonly Point[];
  /** The edge's label; null when its bundle's trunk carries it. */
  readonly label: LabelBox | null;
  /** The bundle this edge joins, or null. */
  readonly bundle: string | null;
  /** Where a taken-count badge goes (on the route, clear of the label). */
  readonly badge: Point;
}

export interface ChartBundle {
  /** `bundle:<to>:<n>`. */
  readonly id: string;
  readonly to: string;
  readonly events: readonly string[];
  /** Keys of the member edges. */
  readonly members: readonly string[];
  readonly junction: Point;
  /** The trunk from the junction to the target. */
  readonly points: readonly Point[];
  readonly label: LabelBox;
}

/** A laid-out statechart: what the SVG renderer draws. */
export interface ChartLayout {
  readonly machine: string;
  readonly version: string;
  readonly width: number;
  readonly height: number;
  readonly nodes: readonly ChartNode[];
  readonly edges: readonly ChartEdge[];
  readonly bundles: readonly ChartBundle[];
  /** The initial pseudo-state's dot and its arrow into the initial state, if any. */
  readonly start: { readonly dot: Point; readonly points: readonly Point[] } | null;
}

/** Text metrics (px): state names are 14px bold sans, labels 11px monospace. */
export const METRICS = {
  nameCharWidth: 8.6,
  nameHeight: 18,
  labelCharWidth: 6.7,
  labelLineHeight: 14,
  loopCharWidth: 6.2,
  padX: 14,
  padY: 12,
  minNodeWidth: 96,
  /** A label wraps after this many characters (events joined with ` · `). */
  labelWrap: 18,
} as const;

/** How many sources must share a target and events before their edges are bundled. */
const BUNDLE_MIN = 3;

/** Events joined for a label, wrapped into lines of at most `METRICS.labelWrap` characters. */
export function labelLines(events: readonly string[]): string[] {
  const lines: string[] = [];
  let line = '';
  for (const e of events) {
    const next = line === '' ? e : `${line} · ${e}`;
    if (line !== '' && next.length > METRICS.labelWrap) {
      lines.push(line);
      line = e;
    } else line = next;
  }
  if (line !== '') lines.push(line);
  return lines;
}

const labelSize = (events: readonly string[]): { width: number; height: number } => {
  const lines = labelLines(events);
  const longest = Math.max(...lines.map((l) => l.length));
  return {
    width: Math.ceil(longest * METRICS.labelCharWidth + 10),
    height: lines.length * METRICS.labelLineHeight + 6,
  };
};

/** The loop badge's text. */
export const loopText = (events: readonly string[]): string => `↻ ${events.join(' · ')}`;

const JUNCTION = 6;

interface DagreNode {
  x: number;
  y: number;
  width: number;
  height: number;
}
interface DagreEdge {
  points: { x: number; y: number }[];
  x?: number;
  y?: number;
}

const round = (n: number): number => Math.round(n * 10) / 10;
const pt = (p: { x: number; y: number }): Point => [round(p.x), round(p.y)];

/** The point halfway along a polyline (by length). */
function midpoint(points: readonly Point[]): Point {
  if (points.length === 0) return [0, 0];
  const segs: number[] = [];
  let total = 0;
  for (let i = 1; i < points.length; i++) {
    const [ax, ay] = points[i - 1]!;
    const [bx, by] = points[i]!;
    const d = Math.hypot(bx - ax, by - ay);
    segs.push(d);
    total += d;
  }
  let left = total / 2;
  for (let i = 1; i < points.length; i++) {
    const d = segs[i - 1]!;
    if (left <= d && d > 0) {
      const [ax, ay] = points[i - 1]!;
      const [bx, by] = points[i]!;
      const f = left / d;
      return [round(ax + (bx - ax) * f), round(ay + (by - ay) * f)];
    }
    left -= d;
  }
  return points[points.length - 1]!;
}

/**
 * The drawing's main line: the longest simple path from the initial state to a final
 * state (the job's happy path, the supervisor's sweep loop), first found in definition
 * order. Machines are small; the search is capped anyway.
 */
export function spineOf(graph: MachineGraph, edges: readonly GraphEdge[]): string[] {
  const start = graph.states.find((s) => s.initial)?.id;
  if (start === undefined) return [];
  const finals = new Set(graph.states.filter((s) => s.final).map((s) => s.id));
  const out = new Map<string, string[]>();
  for (const e of edges) if (e.from !== e.to) out.set(e.from, [...(out.get(e.from) ?? []), e.to]);
  let best: string[] = [start];
  let budget = 100_000;
  const walk = (path: string[]): void => {
    if (--budget < 0) return;
    const at = path[path.length - 1]!;
    if (finals.has(at) && path.length > best.length) best = [...path];
    for (const next of out.get(at) ?? []) if (!path.includes(next)) walk([...path, next]);
  };
  walk([start]);
  return best;
}

/**
 * The left-to-right order the drawing follows: the spine; before it, the states the
 * initial state swaps with (entered from it and leading straight back) that the
 * definition lists before the spine's second state (`blocked`, but not `dead_letter`,
 * which the author put last); after it, every other state in definition order. An
 * edge against this order is drawn as a back edge.
 */
export function drawingOrder(graph: MachineGraph, edges: readonly GraphEdge[]): string[] {
  const spine = spineOf(graph, edges);
  const start = spine[0];
  const has = (from: string, to: string): boolean =>
    edges.some((e) => e.from === from && e.to === to);
  const rest = graph.states.map((s) => s.id).filter((id) => !spine.includes(id));
  const ids = graph.states.map((s) => s.id);
  const second = spine[1] === undefined ? ids.length : ids.indexOf(spine[1]);
  const before =
    start === undefined
      ? []
      : rest.filter((id) => has(start, id) && has(id, start) && ids.indexOf(id) < second);
  return [...before, ...spine, ...rest.filter((id) => !before.includes(id))];
}

/** Groups of non-self edges with one target and one event list, large enough to bundle. */
function findBundles(
  edges: readonly GraphEdge[],
  spine: readonly string[],
): Map<string, GraphEdge[]> {
  const onSpine = (e: GraphEdge): boolean => {
    const i = spine.indexOf(e.from);
    return i >= 0 && spine[i + 1] === e.to;
  };
  const groups = new Map<string, GraphEdge[]>();
  for (const e of edges) {
    if (e.from === e.to || onSpine(e)) continue;
    const k = `${e.to}\u0000${e.events.join('\u0000')}`;
    groups.set(k, [...(groups.get(k) ?? []), e]);
  }
  for (const [k, g] of groups) if (g.length < BUNDLE_MIN) groups.delete(k);
  return groups;
}

/** Lays `graph` out (uncached; see {@link chartLayout}). */
export function layoutChart(graph: MachineGraph): ChartLayout {
  const edges = graphEdges(graph);
  const loops = new Map<string, GraphEdge>();
  for (const e of edges) if (e.from === e.to) loops.set(e.from, e);

  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({
    rankdir: 'LR',
    nodesep: 20,
    edgesep: 14,
    ranksep: 22,
    marginx: 24,
    marginy: 24,
    ranker: 'network-simplex',
  });
  g.setDefaultEdgeLabel(() => ({}));

  for (const s of graph.states) {
    const loop = loops.get(s.id);
    const nameWidth = s.id.length * METRICS.nameCharWidth;
    const loopWidth = loop ? loopText(loop.events).length * METRICS.loopCharWidth + 16 : 0;
    g.setNode(s.id, {
      width: Math.ceil(Math.max(METRICS.minNodeWidth, nameWidth, loopWidth) + 2 * METRICS.padX),
      height: METRICS.nameHeight + 2 * METRICS.padY + (loop ? 22 : 0),
    });
  }
  const initial = graph.states.find((s) => s.initial);
  if (initial) {
    g.setNode('__start', { width: 12, height: 12 });
    g.setEdge('__start', initial.id, { minlen: 1, weight: 4 }, '__start');
  }

  const spine = spineOf(graph, edges);
  const order = drawingOrder(graph, edges);
  const rank = (id: string): number => order.indexOf(id);
  /** Edges against the drawing order go to dagre reversed (and come back reversed). */
  const reversed = new Set<string>();
  const addEdge = (v: string, w: string, name: string, back: boolean, label: object): void => {
    if (back) reversed.add(name);
    if (back) g.setEdge(w, v, label, name);
    else g.setEdge(v, w, label, name);
  };
  const isSpine = (e: GraphEdge): boolean => {
    const i = spine.indexOf(e.from);
    return i >= 0 && spine[i + 1] === e.to;
  };

  const bundles = findBundles(edges, spine);
  const bundleOf = new Map<string, string>();
  let n = 0;
  const bundleIds: { id: string; to: string; members: GraphEdge[] }[] = [];
  for (const members of bundles.values()) {
    const to = members[0]!.to;
    const id = `bundle:${to}:${n++}`;
    bundleIds.push({ id, to, members });
    g.setNode(id, { width: JUNCTION, height: JUNCTION });
    const size = labelSize(members[0]!.events);
    const back = members.every((m) => rank(m.from) > rank(to));
    addEdge(id, to, id, back, { ...size, labelpos: 'c', minlen: 1, weight: 3 });
    for (const m of members) {
      bundleOf.set(m.key, id);
      addEdge(m.from, id, m.key, back, { minlen: 1, weight: 1 });
    }
  }
  for (const e of edges) {
    if (e.from === e.to || bundleOf.has(e.key)) continue;
    const size = labelSize(e.events);
    addEdge(e.from, e.to, e.key, rank(e.from) > rank(e.to), {
      ...size,
      labelpos: 'c',
      minlen: 1,
      weight: isSpine(e) ? 8 : 1,
    });
  }

  dagre.layout(g);

  const node = (id: string): DagreNode => g.node(id) as unknown as DagreNode;
  const edgeOf = (v: string, w: string, name: string): DagreEdge => {
    if (!reversed.has(name)) return g.edge({ v, w, name }) as unknown as DagreEdge;
    const d = g.edge({ v: w, w: v, name }) as unknown as DagreEdge;
    return { ...d, points: [...d.points].reverse() };
  };

  const nodes: ChartNode[] = graph.states.map((s) => {
    const d = node(s.id);
    const loop = loops.get(s.id);
    return {
      id: s.id,
      x: round(d.x),
      y: round(d.y),
      width: d.width,
      height: d.height,
      initial: s.initial,
      final: s.final,
      transient: s.transient,
      loop: loop ? { key: loop.key, events: loop.events } : null,
    };
  });

  const box = (events: readonly string[], at: { x?: number; y?: number }): LabelBox => {
    const size = labelSize(events);
    return {
      text: events.join(' · '),
      x: round(at.x ?? 0),
      y: round(at.y ?? 0),
      width: size.width,
      height: size.height,
    };
  };

  const chartEdges: ChartEdge[] = [];
  for (const e of edges) {
    if (e.from === e.to) continue;
    const bundle = bundleOf.get(e.key) ?? null;
    const d = bundle ? edgeOf(e.from, bundle, e.key) : edgeOf(e.from, e.to, e.key);
    const points = d.points.map(pt);
    chartEdges.push({
      key: e.key,
      from: e.from,
      to: e.to,
      events: e.events,
      points,
      label: bundle ? null : box(e.events, d),
      bundle,
      badge: bundle ? midpoint(points) : midpoint(points.slice(0, Math.ceil(points.length / 2))),
    });
  }
  const chartBundles: ChartBundle[] = bundleIds.map(({ id, to, members }) => {
    const trunk = edgeOf(id, to, id);
    const j = node(id);
    return {
      id,
      to,
      events: members[0]!.events,
      members: members.map((m) => m.key),
      junction: [round(j.x), round(j.y)],
      points: trunk.points.map(pt),
      label: box(members[0]!.events, trunk),
    };
  });

  let start: ChartLayout['start'] = null;
  if (initial) {
    const d = node('__start');
    start = {
      dot: [round(d.x), round(d.y)],
      points: edgeOf('__start', initial.id, '__start').points.map(pt),
    };
  }
  const size = g.graph() as { width?: number; height?: number };
  return {
    machine: graph.id,
    version: graph.version,
    width: Math.ceil(size.width ?? 0),
    height: Math.ceil(size.height ?? 0),
    nodes,
    edges: chartEdges,
    bundles: chartBundles,
    start,
  };
}

const cache = new Map<string, ChartLayout>();

/** {@link layoutChart}, once per machine version (the graph's `version` hash). */
export function chartLayout(graph: MachineGraph): ChartLayout {
  const key = `${graph.id}@${graph.version}`;
  let layout = cache.get(key);
  if (layout === undefined) {
    layout = layoutChart(graph);
    cache.set(key, layout);
  }
  return layout;
}

/** The `data-edge` keys the layout draws (one per distinct pair, loops included). */
export function drawnEdgeKeys(layout: ChartLayout): string[] {
  return [
    ...layout.edges.map((e) => e.key),
    ...layout.nodes.flatMap((n) => (n.loop ? [n.loop.key] : [])),
  ];
}

export { edgeKey };
