/**
 * The `fleet` command line: `main(argv)`, and the factory agent for programmatic use.
 */
export { Agent, type AgentOptions, MAX_SPAWN_FAILURES } from './agent/agent.js';
export { type ChildMessage, parseChildLine } from './agent/child-messages.js';
export { JobRun, movesTo, type RunOutcome, type RunSettings } from './agent/job-run.js';
export { createReporter, type Reporter } from './agent/reporter.js';
export {
  TRANSCRIPT_FORMATS,
  type TranscriptFormat,
  transcriptReader,
} from './agent/transcripts.js';
export { UsageMeter } from './agent/usage-meter.js';
export { formatDuration, parseDuration } from './duration.js';
export { buildProgram, main } from './main.js';
