/**
 * The child's side channel: JSON lines the job's command writes on file descriptor 3.
 * The agent is the only writer to Fleet; the child only tells it what to say.
 *
 * | line | meaning |
 * |---|---|
 * | `{"stage":"review"}` | move the job to `building`, `review` or `testing` (in order; back to `building` from review or testing) |
 * | `{"checkpoint":{"wipBranch":"...","wipCommit":"..."}}` | save a checkpoint (a later attempt gets it in `FLEET_CHECKPOINT`) |
 * | `{"insights":{"tokensIn":1200,"costUsd":0.02}}` | usage increments since the last report |
 * | `{"result":{...}}` | the result to ship with (the last one wins) |
 * | `{"fail":{"class":"transient","message":"..."}}` | end the attempt as failed with this class, whatever the exit status |
 *
 * A line may carry several of these members at once. A line that is not JSON, or does
 * not match, is reported and ignored: a chatty child never breaks its job.
 */
import { z } from 'zod';
import { schemas as S } from '../../../runtime/index.js';

/** Stages a child may ask for (shipping and failing are decided by its exit). */
export const CHILD_STAGES = ['building', 'review', 'testing'] as const;
export type ChildStage = (typeof CHILD_STAGES)[number];

const ChildMessage = z.strictObject({
  stage: z.enum(CHILD_STAGES).optional(),
  checkpoint: S.Checkpoint.optional(),
  insights: S.Insights.optional(),
  result: z.record(z.string(), z.unknown()).optional(),
  fail: z
    .strictObject({
      class: z.string().min(1).max(100),
      message: z.string().max(10_000).default(''),
    })
    .optional(),
});

/** One message from the child. */
export type ChildMessage = z.output<typeof ChildMessage>;

/** A parsed line, or why it was ignored. */
export type ParsedLine = { ok: true; message: ChildMessage } | { ok: false; error: string };

/** Parses one fd 3 line (blank lines are `null`). */
export function parseChildLine(line: string): ParsedLine | null {
  const text = line.trim();
  if (text === '') return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, error: `not JSON: ${text.slice(0, 120)}` };
  }
  const r = ChildMessage.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join('.') : '(line)';
    return { ok: false, error: `${where}: ${issue?.message ?? 'invalid'}: ${text.slice(0, 120)}` };
  }
  return { ok: true, message: r.data };
}
