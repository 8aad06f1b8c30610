/**
 * The machines the inspector draws, by name, and their charts: graph, layout and SVG,
 * computed once per machine version and kept (the layout is the costly part, ~20 ms).
 */
import type { AnyStateMachine } from 'xstate';
import { JOB_MACHINE_VERSION, jobMachine, supervisorMachine } from '../../machines/index.js';
import { type ChartLayout, chartLayout, drawnEdgeKeys } from './chart-layout.js';
import { renderChartSvg } from './chart-svg.js';
import { graphEdges, type MachineGraph, machineGraph } from './machine-graph.js';

/** A machine the inspector draws. */
export interface InspectorMachine {
  readonly machine: AnyStateMachine;
  readonly title: string;
}

/** The names of {@link INSPECTOR_MACHINES}. */
export type MachineName = 'job' | 'supervisor';

/** Every machine the inspector and `fleet machines` know. */
export const INSPECTOR_MACHINES: Readonly<Record<MachineName, InspectorMachine>> = {
  job: { machine: jobMachine, title: `The job lifecycle (machine v${JOB_MACHINE_VERSION})` },
  supervisor: { machine: supervisorMachine, title: 'The supervisor loop' },
};

/** True when `name` names a machine of {@link INSPECTOR_MACHINES}. */
export const isMachineName = (name: string): name is MachineName =>
  Object.hasOwn(INSPECTOR_MACHINES, name);

/** A machine's chart as the pages use it. */
export interface MachineChart {
  readonly name: MachineName;
  readonly title: string;
  readonly graph: MachineGraph;
  readonly layout: ChartLayout;
  /** The `<svg>` element. */
  readonly svg: string;
  /** What the pages' scripts need: states, edges (distinct pairs) and bundles. */
  readonly model: {
    readonly machine: string;
    readonly version: string;
    readonly states: readonly string[];
    readonly edges: readonly string[];
    readonly bundles: readonly { id: string; members: readonly string[] }[];
  };
}

const charts = new Map<string, MachineChart>();
const graphs = new WeakMap<object, MachineGraph>();

/** The graph of machine `name` (read once per machine object). */
export function graphOf(name: MachineName): MachineGraph {
  const { machine } = INSPECTOR_MACHINES[name];
  let graph = graphs.get(machine);
  if (graph === undefined) {
    graph = machineGraph(machine);
    graphs.set(machine, graph);
  }
  return graph;
}

/** The chart of machine `name` (cached per machine version). */
export function machineChart(name: MachineName): MachineChart {
  const entry = INSPECTOR_MACHINES[name];
  const graph = graphOf(name);
  const key = `${name}@${graph.version}`;
  let chart = charts.get(key);
  if (chart === undefined) {
    const layout = chartLayout(graph);
    chart = {
      name,
      title: entry.title,
      graph,
      layout,
      svg: renderChartSvg(layout, { title: entry.title }),
      model: {
        machine: name,
        version: graph.version,
        states: graph.states.map((s) => s.id),
        edges: graphEdges(graph).map((e) => e.key),
        bundles: layout.bundles.map((b) => ({ id: b.id, members: b.members })),
      },
    };
    charts.set(key, chart);
  }
  return chart;
}

export { drawnEdgeKeys };
