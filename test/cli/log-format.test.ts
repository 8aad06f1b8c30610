/**
 * `fleet serve` logs: JSON lines when stdout is not a terminal (as here), human-readable
 * lines with `FLEET_LOG_FORMAT=pretty` (the default on a terminal); a bad value is a
 * configuration error.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { fleet, killEverything, PROCESS_TEST_MS, startServer } from '../support/agent-harness.js';

afterEach(killEverything);

describe('server log format', { timeout: PROCESS_TEST_MS }, () => {
  it('JSON when not a terminal, pretty when asked', async () => {
    const json = await startServer({ env: { FLEET_LOG_LEVEL: 'info', FLEET_LOG_FORMAT: '' } });
    await json.proc.waitForLine(
      /"msg":"Server listening at http:\/\/127\.0\.0\.1:\d+"/,
      'a JSON line',
    );
    const line = json.proc
      .stdout()
      .split('\n')
      .find((l) => l.includes('Server listening'))!;
    expect(JSON.parse(line)).toMatchObject({
      level: 30,
      msg: expect.stringMatching(/^Server listening/),
    });

    const pretty = await startServer({
      env: { FLEET_LOG_LEVEL: 'info', FLEET_LOG_FORMAT: 'pretty' },
    });
    await pretty.proc.waitForLine(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: Server listening at http:\/\/127\.0\.0\.1:\d+$/,
      'a pretty line',
    );
    expect(pretty.proc.stdout()).not.toMatch(/^\{"level"/m);
  });

  it('refuses a format it does not know', async () => {
    const r = await fleet(['serve'], { FLEET_STORE: 'memory', PORT: '0', FLEET_LOG_FORMAT: 'xml' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ {2}FLEET_LOG_FORMAT: must be one of json, pretty \(got "xml"\)$/m);
  });
});
