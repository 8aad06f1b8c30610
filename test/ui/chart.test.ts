/**
 * The statecharts are generated from the machine definitions: one `data-state` per
 * state and one `data-edge` per distinct (from, to) pair, for every machine; a machine
 * that gains a state or a move gets it drawn; layouts are cached per machine version;
 * the drawing is sane (no overlapping states, every edge routed).
 */
import { describe, expect, it } from 'vitest';
import {
  chartLayout,
  drawnEdgeKeys,
  graphEdges,
  INSPECTOR_MACHINES,
  type MachineName,
  machineChart,
  machineGraph,
  renderChartSvg,
} from '../../adapters/ui/index.js';
import { JOB_STATES, jobMachine, jobMachineSetup } from '../../machines/index.js';

const attrs = (svg: string, name: string): string[] =>
  [...svg.matchAll(new RegExp(`\\s${name}="([^"]*)"`, 'g'))].map((m) =>
    m[1]!.replaceAll('&gt;', '>'),
  );

/** The (from, to) pairs of a machine, read straight from its state nodes (not from our graph code). */
function pairsOf(machine: typeof jobMachine): Set<string> {
  const pairs = new Set<string>();
  for (const [key, node] of Object.entries(machine.root.states)) {
    for (const transitions of node.transitions.values()) {
      for (const t of transitions) {
        const targets = t.target ?? [];
        if (targets.length === 0) pairs.add(`${key}->${key}`);
        for (const target of targets) pairs.add(`${key}->${target.key}`);
      }
    }
    for (const t of node.always ?? [])
      for (const target of t.target ?? []) pairs.add(`${key}->${target.key}`);
  }
  return pairs;
}

describe('statechart generation', () => {
  it.each(Object.keys(INSPECTOR_MACHINES) as MachineName[])(
    '%s: exactly one data-state per state and one data-edge per distinct (from, to) pair',
    (name) => {
      const chart = machineChart(name);
      const machine = INSPECTOR_MACHINES[name].machine as typeof jobMachine;
      const states = attrs(chart.svg, 'data-state');
      expect([...states].sort()).toEqual(Object.keys(machine.root.states).sort());
      const edges = attrs(chart.svg, 'data-edge');
      expect(new Set(edges).size).toBe(edges.length);
      expect(new Set(edges)).toEqual(pairsOf(machine));
    },
  );

  it('the job chart draws every stage and the shared moves readably (loops as badges, bundles)', () => {
    const { layout, svg } = machineChart('job');
    expect(layout.nodes.map((n) => n.id).sort()).toEqual([...JOB_STATES].sort());
    const building = layout.nodes.find((n) => n.id === 'building')!;
    expect(building.loop?.events).toEqual(['RENEW', 'RECORD']);
    const intoDead = layout.bundles.filter((b) => b.to === 'dead_letter');
    expect(intoDead.length).toBeGreaterThan(0);
    expect(intoDead.flatMap((b) => b.members)).toEqual(
      expect.arrayContaining([
        'assigned->dead_letter',
        'building->dead_letter',
        'testing->dead_letter',
      ]),
    );
    // Every bundled edge's label is written once, on its trunk.
    for (const e of layout.edges) expect(e.label === null).toBe(e.bundle !== null);
    expect(svg).not.toMatch(/\sstyle=|<script|<style/);
  });

  it('a machine that gains a state and a move is drawn with them (nothing is drawn by hand)', () => {
    const grown = jobMachineSetup.createMachine({
      ...jobMachine.config,
      states: {
        ...jobMachine.config.states,
        review: {
          ...jobMachine.config.states!.review!,
          on: { ...jobMachine.config.states!.review!.on, PARK: { target: 'parked' } },
        },
        parked: { on: { DEPS_MET: { target: 'review' } } },
      },
    } as never);
    const before = machineGraph(jobMachine);
    const after = machineGraph(grown as never);
    expect(after.version).not.toBe(before.version);
    const layout = chartLayout(after);
    const svg = renderChartSvg(layout);
    expect(attrs(svg, 'data-state')).toContain('parked');
    expect(attrs(svg, 'data-edge')).toEqual(
      expect.arrayContaining(['review->parked', 'parked->review']),
    );
    expect(new Set(drawnEdgeKeys(layout))).toEqual(pairsOf(grown as never));
    expect(chartLayout(after)).toBe(layout); // cached per version
    expect(chartLayout(before)).not.toBe(layout);
  });

  it('lays out without overlapping states, and routes every edge', () => {
    for (const name of Object.keys(INSPECTOR_MACHINES) as MachineName[]) {
      const { layout } = machineChart(name);
      for (const a of layout.nodes) {
        for (const b of layout.nodes) {
          if (a === b) continue;
          const apart =
            Math.abs(a.x - b.x) >= (a.width + b.width) / 2 ||
            Math.abs(a.y - b.y) >= (a.height + b.height) / 2;
          expect(apart, `${a.id} overlaps ${b.id}`).toBe(true);
        }
        expect(a.x - a.width / 2).toBeGreaterThanOrEqual(0);
        expect(a.x + a.width / 2).toBeLessThanOrEqual(layout.width);
      }
      for (const e of layout.edges) expect(e.points.length, e.key).toBeGreaterThanOrEqual(2);
      expect(graphEdges(machineGraph(INSPECTOR_MACHINES[name].machine)).length).toBe(
        drawnEdgeKeys(layout).length,
      );
    }
  });
});
