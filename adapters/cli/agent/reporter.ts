/**
 * What the agent tells its operator: one line per event — a short human sentence on a
 * terminal, a JSON object per line with `--json` (`{ "at", "event", ...fields }`), for
 * log shippers and tests.
 */

/** Fields of one report line. */
export type ReportFields = Record<string, unknown>;

/** Where report lines go. */
export interface Reporter {
  event(event: string, fields?: ReportFields): void;
}

const short = (id: unknown): string => (typeof id === 'string' ? id.replace(/^job_/, '') : '?');

/** The human sentence of an event. */
function sentence(event: string, f: ReportFields): string {
  const job = `job ${short(f.jobId)}`;
  switch (event) {
    case 'started':
      return `agent ${f.factoryId} on ${f.url}: ${f.seats} seat(s), capabilities ${(f.capabilities as string[]).join(',') || '(none)'}; running: ${f.exec}`;
    case 'claimed':
      return `${job} claimed (attempt ${f.attempt}, epoch ${f.leaseEpoch}, lease ${Math.round(Number(f.ttlMs) / 1000)}s)`;
    case 'stage':
      return `${job} → ${f.stage}`;
    case 'spawned':
      return `${job} running as pid ${f.pid}; log ${f.log}`;
    case 'progress':
      return `${job} progress #${f.seq}${f.checkpoint ? ' (checkpoint)' : ''}`;
    case 'child_exited':
      return `${job} command ended (${f.signal ? `signal ${f.signal}` : `status ${f.code}`})`;
    case 'shipped':
      return `${job} shipped`;
    case 'failed':
      return `${job} failed: ${f.class}${f.message ? ` — ${String(f.message).split('\n')[0]}` : ''}`;
    case 'released':
      return `${job} released (${f.reason})`;
    case 'fenced':
      return `${job} FENCED (${f.reason ?? 'lease lost'}; epoch now ${f.leaseEpoch ?? '?'}): command killed, no more writes`;
    case 'lease_deadline':
      return `${job} lease not renewed in time: command killed before the lease ends`;
    case 'timeout':
      return `${job} timed out after ${f.after}: stopping the command`;
    case 'killed':
      return `${job} command still running after the grace: SIGKILL`;
    case 'spawn_failed':
      return `${job} could not start the command: ${f.error}; giving the job back`;
    case 'stopped_claiming':
      return `${f.failures} spawn failures in a row: no more claims (factory degraded)`;
    case 'draining':
      return `draining: no new claims; waiting for ${f.running} job(s)${f.timeout ? ` (at most ${f.timeout})` : ''}`;
    case 'cancelling':
      return `cancelling ${f.running} job(s): stopping their commands and releasing their leases`;
    case 'drained':
      return 'drained: every job finished';
    case 'exiting':
      return `exiting (${f.code})`;
    case 'retrying':
      return `${f.op} failed (${f.error}); again in ${Math.round(Number(f.waitMs))} ms`;
    case 'resolved':
      return `${job} ${f.op}: the answer was lost (${f.error}); the job shows it was applied`;
    case 'child_message':
      return `${job} ignored a line on fd 3: ${f.error}`;
    default:
      return `${event} ${JSON.stringify(f)}`;
  }
}

/** A reporter writing to `out` (one line per call). */
export function createReporter(
  json: boolean,
  out: (line: string) => void,
  clock: () => Date = () => new Date(),
): Reporter {
  return {
    event(event, fields = {}) {
      const at = clock();
      if (json) out(JSON.stringify({ at: at.toISOString(), event, ...fields }));
      else out(`${at.toISOString().slice(11, 19)} ${sentence(event, fields)}`);
    },
  };
}
