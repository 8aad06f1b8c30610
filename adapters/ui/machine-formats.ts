/**
 * A machine's graph as text for other tools: Mermaid (`stateDiagram-v2`, what the README
 * embeds), SCXML (W3C State Chart XML), JSON (the graph itself) and SVG (the inspector's
 * drawing). Each is generated from the machine definition; nothing is written by hand.
 */
import { chartLayout } from './chart-layout.js';
import { renderChartSvg } from './chart-svg.js';
import { graphEdges, type MachineGraph } from './machine-graph.js';

/** The formats `fleet machines --format` prints. */
export const MACHINE_FORMATS = ['svg', 'mermaid', 'scxml', 'json'] as const;
export type MachineFormat = (typeof MACHINE_FORMATS)[number];

/**
 * Mermaid `stateDiagram-v2`: one arrow per distinct (from, to) pair labelled with its
 * events (so the diagram stays as readable as the inspector's), the initial and final
 * pseudo-states, and a note on transient states. Deterministic: same machine, same text.
 */
export function toMermaid(graph: MachineGraph): string {
  const lines = ['stateDiagram-v2'];
  for (const s of graph.states) if (s.initial) lines.push(`  [*] --> ${s.id}`);
  for (const e of graphEdges(graph)) {
    lines.push(`  ${e.from} --> ${e.to}: ${e.events.join(', ')}`);
  }
  for (const s of graph.states) if (s.final) lines.push(`  ${s.id} --> [*]`);
  for (const s of graph.states) {
    if (s.transient) lines.push(`  note right of ${s.id}: transient (left at once)`);
  }
  return `${lines.join('\n')}\n`;
}

const xml = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/**
 * SCXML 1.0: a `<state>` (or `<final>`) per state and a `<transition>` per branch, with
 * xstate's event type, the guard as `cond` and the action names in a comment. A
 * targetless transition has no `target` and is `type="internal"`; an eventless one has no
 * `event`.
 */
export function toScxml(graph: MachineGraph): string {
  const initial = graph.states.find((s) => s.initial)?.id;
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" name="${xml(graph.id)}"${initial ? ` initial="${xml(initial)}"` : ''}>`,
  ];
  for (const s of graph.states) {
    const ts = graph.transitions.filter((t) => t.from === s.id);
    const tag = s.final ? 'final' : 'state';
    if (ts.length === 0) {
      out.push(`  <${tag} id="${xml(s.id)}"/>`);
      continue;
    }
    out.push(`  <${tag} id="${xml(s.id)}">`);
    for (const t of ts) {
      const attrs = [
        t.eventType === null ? '' : ` event="${xml(t.eventType)}"`,
        t.guard === null ? '' : ` cond="${xml(t.guard)}"`,
        t.targetless ? ' type="internal"' : ` target="${xml(t.to)}"`,
      ].join('');
      const actions = t.actions.length > 0 ? `<!-- actions: ${xml(t.actions.join(', '))} -->` : '';
      out.push(
        actions === ''
          ? `    <transition${attrs}/>`
          : `    <transition${attrs}>${actions}</transition>`,
      );
    }
    out.push(`  </${tag}>`);
  }
  out.push('</scxml>');
  return `${out.join('\n')}\n`;
}

/** The graph as JSON: states, transitions (every branch) and edges (distinct pairs). */
export function toJson(graph: MachineGraph): string {
  return `${JSON.stringify({ ...graph, edges: graphEdges(graph) }, null, 2)}\n`;
}

/** The inspector's drawing as a standalone SVG document. */
export function toSvg(graph: MachineGraph): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${renderChartSvg(chartLayout(graph))}\n`;
}

/** `graph` in `format`. */
export function formatMachine(graph: MachineGraph, format: MachineFormat): string {
  switch (format) {
    case 'svg':
      return toSvg(graph);
    case 'mermaid':
      return toMermaid(graph);
    case 'scxml':
      return toScxml(graph);
    case 'json':
      return toJson(graph);
  }
}
