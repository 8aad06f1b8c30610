/**
 * The job stages in lifecycle order, for the CLI's choices and tables. A type check ties
 * the list to the runtime's `Stage` schema: a stage added there fails to compile here.
 * (Kept apart from the runtime so `fleet help` loads no schema library.)
 */
import type { Stage } from '../../runtime/index.js';

export const STAGES = [
  'blocked',
  'queued',
  'assigned',
  'building',
  'review',
  'testing',
  'failed',
  'shipped',
  'dead_letter',
] as const satisfies readonly Stage[];

/** Compile-time: every stage of the schema is in the list. */
export const STAGES_COMPLETE: [Exclude<Stage, (typeof STAGES)[number]>] extends [never]
  ? true
  : never = true;
