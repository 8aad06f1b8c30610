/**
 * `fleet machines`: every format, both machines, usage errors; the README's Mermaid copy
 * of the job machine is the generated one (regenerate with `npm run docs:machines`).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  graphEdges,
  graphOf,
  MACHINE_FORMATS,
  runMachinesCommand,
  toMermaid,
} from '../../adapters/ui/index.js';
import { README_PATH, readmeMermaidBlock } from '../../scripts/readme-machines.js';

const run = (...args: string[]) => {
  let out = '';
  let err = '';
  const code = runMachinesCommand(
    args,
    (t) => {
      out += t;
    },
    (t) => {
      err += t;
    },
  );
  return { code, out, err };
};

describe('fleet machines', () => {
  it('prints every format of every machine, generated from the definition', () => {
    for (const machine of ['job', 'supervisor'] as const) {
      const graph = graphOf(machine);
      for (const format of MACHINE_FORMATS) {
        const r = run('--format', format, '--machine', machine);
        expect(r.code, r.err).toBe(0);
        expect(r.out.length).toBeGreaterThan(100);
      }
      const mermaid = run('--machine', machine).out;
      expect(mermaid.startsWith('stateDiagram-v2\n')).toBe(true);
      for (const e of graphEdges(graph)) expect(mermaid).toContain(`  ${e.from} --> ${e.to}: `);
      const scxml = run('--format=scxml', `--machine=${machine}`).out;
      expect(scxml.match(/<transition\b/g)?.length).toBe(graph.transitions.length);
      const json = JSON.parse(run('--format', 'json', '--machine', machine).out);
      expect(json.states.map((s: { id: string }) => s.id)).toEqual(graph.states.map((s) => s.id));
      const svg = run('--format', 'svg', '--machine', machine).out;
      expect(svg).toMatch(/^<\?xml[^>]*>\n<svg /);
    }
  });

  it('rejects bad usage with status 2 and a clear message', () => {
    expect(run('--format', 'png')).toMatchObject({
      code: 2,
      err: expect.stringMatching(/unknown format png/),
    });
    expect(run('--machine', 'nope')).toMatchObject({
      code: 2,
      err: expect.stringMatching(/unknown machine nope/),
    });
    expect(run('--format')).toMatchObject({ code: 2, err: expect.stringMatching(/needs a value/) });
    expect(run('extra')).toMatchObject({
      code: 2,
      err: expect.stringMatching(/unknown argument extra/),
    });
    expect(run('--help')).toMatchObject({
      code: 0,
      out: expect.stringMatching(/^usage: fleet machines/),
    });
  });

  it('the README embeds the current Mermaid of the job machine (npm run docs:machines)', () => {
    const readme = readFileSync(README_PATH, 'utf8');
    expect(readme).toContain(readmeMermaidBlock(toMermaid(graphOf('job'))));
  });
});
