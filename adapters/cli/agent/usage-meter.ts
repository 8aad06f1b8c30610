/**
 * Insight increments waiting to be reported: the agent adds what the child says (fd 3)
 * and what the transcript parser finds, and takes the total when it reports (a progress
 * call at most every 15 s, the rest with the final PATCH). Nothing is counted twice:
 * each take empties the meter.
 */
import { type Insights, type Usage, ZERO_USAGE } from '../../../runtime/index.js';

/** A numeric insight field. */
export type UsageField = keyof Usage;

/** The numeric insight fields, in the order the API lists them. */
export const USAGE_FIELDS = Object.keys(ZERO_USAGE) as UsageField[];

export type UsageIncrements = Partial<Record<UsageField, number>>;

/** Accumulates increments until taken. */
export class UsageMeter {
  #pending: Record<UsageField, number> = zero();
  #model: string | undefined;
  /** Everything ever added (for the agent's own report lines). */
  readonly total: Record<UsageField, number> = zero();

  add(increments: UsageIncrements, model?: string): void {
    for (const f of USAGE_FIELDS) {
      const v = increments[f];
      if (typeof v === 'number' && Number.isFinite(v) && v > 0) {
        this.#pending[f] += v;
        this.total[f] += v;
      }
    }
    if (model) this.#model = model;
  }

  /** True when something waits to be reported. */
  get pending(): boolean {
    return USAGE_FIELDS.some((f) => this.#pending[f] > 0) || this.#model !== undefined;
  }

  /**
   * The waiting increments as an `insights` body (integers where the API wants them),
   * and empties the meter; undefined when there is nothing. Call `putBack` if the report
   * did not go through.
   */
  take(): Insights | undefined {
    if (!this.pending) return undefined;
    const out: Insights = {};
    for (const f of USAGE_FIELDS) {
      const v = this.#pending[f];
      if (v > 0) out[f] = f === 'costUsd' ? roundUsd(v) : Math.round(v);
    }
    if (this.#model !== undefined) out.model = this.#model;
    this.#pending = zero();
    this.#model = undefined;
    return out;
  }

  /** Returns taken increments that were not reported (they are counted again later). */
  putBack(insights: Insights | undefined): void {
    if (!insights) return;
    for (const f of USAGE_FIELDS) {
      const v = insights[f];
      if (typeof v === 'number') this.#pending[f] += v;
    }
    if (insights.model !== undefined && this.#model === undefined) this.#model = insights.model;
  }
}

const zero = (): Record<UsageField, number> =>
  Object.fromEntries(USAGE_FIELDS.map((f) => [f, 0])) as Record<UsageField, number>;

/** Cost to a tenth of a micro-dollar: float sums never show 0.30000000000000004. */
const roundUsd = (v: number): number => Math.round(v * 1e7) / 1e7;
