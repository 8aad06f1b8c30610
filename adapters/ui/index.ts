/**
 * The inspector's user interface: the statecharts generated from `machines/` (graph,
 * layout, SVG, Mermaid, SCXML, JSON), the HTML pages and their static assets, and the
 * `fleet machines` command. The HTTP routes that serve them are in `adapters/http`.
 */
export { type Asset, inspectorAssets } from './assets.js';
export {
  type ChartBundle,
  type ChartEdge,
  type ChartLayout,
  type ChartNode,
  chartLayout,
  drawingOrder,
  drawnEdgeKeys,
  layoutChart,
  spineOf,
} from './chart-layout.js';
export { escapeXml, renderChartSvg, smoothPath } from './chart-svg.js';
export {
  formatMachine,
  MACHINE_FORMATS,
  type MachineFormat,
  toJson,
  toMermaid,
  toScxml,
  toSvg,
} from './machine-formats.js';
export {
  edgeKey,
  type GraphEdge,
  type GraphState,
  type GraphTransition,
  graphEdges,
  type MachineGraph,
  machineGraph,
} from './machine-graph.js';
export {
  graphOf,
  INSPECTOR_MACHINES,
  type InspectorMachine,
  isMachineName,
  type MachineChart,
  type MachineName,
  machineChart,
} from './machines.js';
export { MACHINES_USAGE, runMachinesCommand } from './machines-command.js';
export {
  jobPage,
  jobsPage,
  machinePage,
  overviewPage,
  type PageName,
  type PageOptions,
} from './pages.js';
