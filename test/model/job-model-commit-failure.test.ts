/**
 * The model's shortest paths on SQLite, every step first with its group commit failing
 * (commit-failure.ts; issue 10, item 4): nothing of a rolled-back batch remains or is
 * reported, and live projections always equal the rebuild of what is stored.
 */
import { describe, expect, it } from 'vitest';
import { formatViolation } from './check.js';
import { runPathWithFailingCommits } from './commit-failure.js';
import { makePlan } from './plan.js';

describe('job model on SQLite with failing group commits', () => {
  it('4: every step of every shortest path, first with its commit failing: the job is as before, only committed events are reported, live projections equal rebuildAll', async () => {
    const plan = makePlan();
    const violations = [];
    let steps = 0;
    for (const path of plan.shortest) {
      steps += path.steps.length;
      violations.push(...(await runPathWithFailingCommits(path, plan.model)));
      if (violations.length >= 20) break;
    }
    console.log(
      `[model] failing commits: ${plan.shortest.length} shortest paths, ${steps} steps, each first with its commit failing`,
    );
    expect(violations.map(formatViolation)).toEqual([]);
  }, 300_000);
});
