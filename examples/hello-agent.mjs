// A toy coding agent for the README's quick start: `fleet agent --exec` runs it once per
// job. It reads the job's body on stdin, works, and tells the agent what to report by
// writing JSON lines on file descriptor 3; exit 0 ships the job. A real factory runs
// Claude Code, Codex or a script of yours the same way.
import { readFileSync, writeSync } from 'node:fs';

const body = readFileSync(0, 'utf8').trim();
const report = (message) => writeSync(3, `${JSON.stringify(message)}\n`);

console.log(`job ${process.env.FLEET_JOB_ID}, attempt ${process.env.FLEET_ATTEMPT}: ${body}`);
report({ stage: 'review' });
report({ insights: { turns: 1, tokensIn: body.length } });
report({ result: { summary: `Hello from a factory! (${body.split('\n')[0]})` } });
