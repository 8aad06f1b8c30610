/**
 * Issue 13's goals as rows of one summary table: what was measured, the target, the
 * ratio (measured ÷ target, or for a ceiling such as "≤ 4 requests", target ÷ measured:
 * a ratio ≥ 1 always means met) and whether it was met. A goal that could not be
 * measured in this run (a server missing, a section failed) says why instead.
 */
import { table } from './report.js';

export interface GoalRow {
  /** e.g. `2. HTTP lifecycle / in-process`. */
  goal: string;
  /** The measured figure, with its unit. */
  measured: string;
  /** The target, e.g. `≥ 0.60×`. */
  target: string;
  /** ≥ 1 means met; null when not measured. */
  ratio: number | null;
  /** Why there is no figure (skipped, failed). */
  note?: string;
  /** A comparison with no target (the ratio is printed, nothing is met or missed). */
  informational?: boolean;
}

/** A side-by-side figure with no target: `ratio` = ours ÷ theirs. */
export function beside(goal: string, measured: string, ratio: number): GoalRow {
  return { goal, measured, target: 'none (beside)', ratio, informational: true };
}

/** A goal met when `value ≥ target`. */
export function atLeast(
  goal: string,
  measured: string,
  value: number,
  target: number,
  targetText: string,
): GoalRow {
  return { goal, measured, target: targetText, ratio: value / target };
}

/** A goal met when `value ≤ target` (ratio = target ÷ value). */
export function atMost(
  goal: string,
  measured: string,
  value: number,
  target: number,
  targetText: string,
): GoalRow {
  return {
    goal,
    measured,
    target: targetText,
    ratio: value === 0 ? Number.POSITIVE_INFINITY : target / value,
  };
}

/** A goal this run has no figure for, and why. */
export function notMeasured(goal: string, target: string, why: string): GoalRow {
  return { goal, measured: '-', target, ratio: null, note: why };
}

/**
 * The summary table: goal, measured, target, ratio, met? (`yes`/`no`; `-` for a
 * comparison without a target; `n/m` when not measured, with the reason listed below).
 */
export function goalTable(rows: readonly GoalRow[]): string {
  const notes: string[] = [];
  const body = table(
    ['goal', 'measured', 'target', 'ratio', 'met?'],
    rows.map((r) => {
      let met: string;
      if (r.ratio === null) {
        notes.push(`${r.goal}: not measured: ${r.note ?? '?'}`);
        met = 'n/m';
      } else met = r.informational ? '-' : r.ratio >= 1 ? 'yes' : 'no';
      return [
        r.goal,
        r.measured,
        r.target,
        r.ratio === null ? '-' : Number.isFinite(r.ratio) ? r.ratio.toFixed(2) : '∞',
        met,
      ];
    }),
  );
  return [body, ...notes].join('\n');
}
