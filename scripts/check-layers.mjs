#!/usr/bin/env node
// Layer rule (DESIGN.md): machines/ imports nothing of ours; runtime/ never imports adapters/.
// Scans static imports, re-exports and dynamic imports of every .ts file in those folders.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const rules = [
  {
    dir: 'machines',
    forbid: (target) => !target.startsWith('machines/'),
    why: 'machines/ imports nothing of ours',
  },
  {
    dir: 'runtime',
    forbid: (target) => target.startsWith('adapters/'),
    why: 'runtime/ never imports adapters/',
  },
];
const importRe =
  /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s+['"]([^'"]+)['"]/gm;

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

const violations = [];
for (const rule of rules) {
  const base = join(root, rule.dir);
  try {
    statSync(base);
  } catch {
    continue;
  }
  for (const file of files(base)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(importRe)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (!spec?.startsWith('.')) continue; // packages are fine
      const target = relative(root, resolve(dirname(file), spec));
      if (rule.forbid(target))
        violations.push(`${relative(root, file)} imports ${spec}: ${rule.why}`);
    }
  }
}
if (violations.length > 0) {
  for (const v of violations) process.stderr.write(`layer violation: ${v}\n`);
  process.exit(1);
}
process.stdout.write('layers ok\n');
