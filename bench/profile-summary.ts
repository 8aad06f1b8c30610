/**
 * Prints the functions with the most self time in a V8 `.cpuprofile` (as written by
 * `node --cpu-prof` or by the benchmarks under `FLEET_BENCH_CPU_PROFILE=<dir>`), and
 * the share of samples whose stack passes through each of our source files.
 *
 *   npx tsx bench/profile-summary.ts <file.cpuprofile> [--top=25]
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import { isMain } from './support/main.js';
import { say, table } from './support/report.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const frameName = (f: ProfileNode['callFrame']): string => {
  const fn = f.functionName || '(anonymous)';
  if (!f.url) return fn;
  const path = f.url.startsWith('file://')
    ? relative(process.cwd(), new URL(f.url).pathname)
    : f.url;
  return `${fn}  ${path}:${f.lineNumber + 1}`;
};

/** Self time per function and inclusive time per file, in ms and as shares. */
export function summarise(profile: Profile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const inclusiveFile = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    // The first delta runs from an arbitrary origin to the first sample: not time spent.
    const dt = i === 0 ? 0 : (profile.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    const node = byId.get(id);
    if (!node) return;
    const name = frameName(node.callFrame);
    self.set(name, (self.get(name) ?? 0) + dt);
    const files = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const url = byId.get(cur)?.callFrame.url ?? '';
      if (url.startsWith('file://') && !url.includes('/node_modules/')) {
        files.add(relative(process.cwd(), new URL(url).pathname));
      }
    }
    for (const f of files) inclusiveFile.set(f, (inclusiveFile.get(f) ?? 0) + dt);
  });
  const pct = (ms: number) => `${((ms / total) * 100).toFixed(1)}%`;
  const selfRows = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, ms]) => [name, ms.toFixed(0), pct(ms)]);
  const fileRows = [...inclusiveFile.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([name, ms]) => [name, ms.toFixed(0), pct(ms)]);
  return [
    `${total.toFixed(0)} ms sampled`,
    '',
    table(['self time: function', 'ms', 'share'], selfRows),
    '',
    table(['inclusive time: our file on the stack', 'ms', 'share'], fileRows),
  ].join('\n');
}

if (isMain(import.meta.url)) {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: { top: { type: 'string' } },
    allowPositionals: true,
  });
  for (const file of positionals) {
    say(`== ${file} ==`);
    say(summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(values.top ?? 25)));
    say();
  }
}
