/**
 * `fleet prune --older-than 7d [--dry-run]`: deletes, on a running server, the jobs
 * that finished (`shipped`, `dead_letter`) longer ago than the given age, with their
 * runs, lease, events and artifact pointers (`POST /fleet/admin/prune`, see
 * `adapters/http/retention.ts`), call after call until every finished job was looked
 * at. Needs an admin token whose grant has `"operator": true`. A job that another job
 * names in its deps is kept (README "Retention").
 */
import type { PruneResult } from '../client/index.js';
import { type ConnectionOptions, clientFor } from './connection.js';
import { CliError, print, printJson } from './output.js';

export interface PruneOptions extends ConnectionOptions {
  /** The age, as the server reads it: `7d`, `12h`, `1d12h`, `90m`; `0` = every finished job. */
  olderThan: string;
  dryRun?: boolean;
  json?: boolean;
}

/** Runs `fleet prune`; resolves with the exit status (0 done, 1 a job could not be pruned). */
export async function prune(o: PruneOptions): Promise<number> {
  if (o.olderThan.trim() === '') throw new CliError('--older-than needs an age, e.g. 30d', 2);
  const client = clientFor(o);
  const dryRun = o.dryRun === true;
  const total: PruneResult = await client.pruneAll({ olderThan: o.olderThan, dryRun }, (pass) => {
    if (!o.json && pass.nextCursor !== null) {
      print(`fleet prune: ${pass.pruned} ${dryRun ? 'to prune' : 'pruned'} so far in this pass...`);
    }
  });
  if (o.json) printJson(total);
  else {
    const verb = dryRun ? 'would prune' : 'pruned';
    const d = total.documents;
    print(
      `fleet prune: ${verb} ${total.pruned} jobs finished before ${total.before} ` +
        `(${total.prunedByStage.shipped} shipped, ${total.prunedByStage.dead_letter} dead_letter)` +
        (dryRun
          ? ''
          : `, with ${d.runs} runs, ${d.leases} leases, ${d.events} events, ${d.artifacts} artifacts`) +
        `; kept ${total.kept} that other jobs depend on` +
        (total.failedJobs > 0 ? `; ${total.failedJobs} failed (see the server log)` : ''),
    );
  }
  return total.failedJobs > 0 ? 1 : 0;
}
