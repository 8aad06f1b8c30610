/**
 * The agent's pure pieces: transcript readers (Claude Code stream-json, Codex --json),
 * the fd 3 line parser, the stage walk, durations, the usage meter, the shell's 128+N
 * statuses, backoff bounds and the lease's safety margin.
 */
import { describe, expect, it } from 'vitest';
import { parseChildLine } from '../../adapters/cli/agent/child-messages.js';
import { movesTo, signalOfShellStatus } from '../../adapters/cli/agent/job-run.js';
import { safetyMargin } from '../../adapters/cli/agent/lease-keeper.js';
import { transcriptReader } from '../../adapters/cli/agent/transcripts.js';
import { UsageMeter } from '../../adapters/cli/agent/usage-meter.js';
import { formatDuration, parseDuration } from '../../adapters/cli/duration.js';
import { backoffMs, parseRetryAfter } from '../../adapters/client/index.js';
import {
  CLAUDE_TOTALS,
  CLAUDE_TRANSCRIPT,
  CODEX_TOTALS,
  CODEX_TRANSCRIPT,
} from './fixtures/transcripts.js';

const read = (format: 'claude' | 'codex', text: string, chunks = 1) => {
  const meter = new UsageMeter();
  const reader = transcriptReader(format, meter);
  const lines = text.split('\n');
  // Report (take) several times along the way: what is taken is never counted again.
  const taken: Array<Record<string, unknown>> = [];
  const every = Math.max(1, Math.ceil(lines.length / chunks));
  lines.forEach((line, i) => {
    reader.line(line);
    if ((i + 1) % every === 0) taken.push({ ...meter.take() });
  });
  taken.push({ ...meter.take() });
  const sum: Record<string, number> = {};
  let model: unknown;
  for (const t of taken) {
    for (const [k, v] of Object.entries(t)) {
      if (k === 'model') model = v;
      else sum[k] = Math.round(((sum[k] ?? 0) + (v as number)) * 1e7) / 1e7;
    }
  }
  return { sum, model };
};

describe('transcript readers', () => {
  it('Claude stream-json: each message once, totals reconciled with the result line', () => {
    for (const chunks of [1, 3, 9]) {
      const { sum, model } = read('claude', CLAUDE_TRANSCRIPT, chunks);
      expect(sum).toEqual(CLAUDE_TOTALS);
      expect(model).toBe('claude-sonnet-4-5');
    }
  });

  it('Claude: without a result line (killed early) the messages still count', () => {
    const cut = CLAUDE_TRANSCRIPT.split('\n')
      .filter((l) => !l.includes('"type":"result"'))
      .join('\n');
    expect(read('claude', cut).sum).toEqual({
      tokensIn: 180,
      tokensCached: 2200,
      tokensOut: 60,
      toolCalls: 2,
    });
  });

  it('Codex --json: per-turn usage added up, cached input apart, tool items counted once', () => {
    for (const chunks of [1, 4])
      expect(read('codex', CODEX_TRANSCRIPT, chunks).sum).toEqual(CODEX_TOTALS);
  });

  it('ignores what is not JSON or not these shapes', () => {
    expect(
      read('claude', 'hello\n{"type":"assistant"}\n[1,2]\n{"type":"result","usage":7}').sum,
    ).toEqual({});
    expect(read('codex', '{"type":"turn.completed"}\n{oops').sum).toEqual({ turns: 1 });
  });
});

describe('fd 3 lines', () => {
  it('parses each message, several per line', () => {
    expect(parseChildLine('{"stage":"review","insights":{"tokensIn":5}}')).toEqual({
      ok: true,
      message: { stage: 'review', insights: { tokensIn: 5 } },
    });
    expect(parseChildLine('{"fail":{"class":"transient"}}')).toEqual({
      ok: true,
      message: { fail: { class: 'transient', message: '' } },
    });
    expect(parseChildLine('   ')).toBeNull();
  });

  it('reports what it ignores: not JSON, unknown members, stages a child may not ask for', () => {
    expect(parseChildLine('working...')).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^not JSON/),
    });
    expect(parseChildLine('{"stage":"shipped"}')).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^stage:/),
    });
    expect(parseChildLine('{"stages":"review"}')).toMatchObject({ ok: false });
    expect(parseChildLine('{"insights":{"tokensIn":-1}}')).toMatchObject({ ok: false });
  });
});

describe('stage walk', () => {
  it('moves forward one stage at a time, back to building directly', () => {
    expect(movesTo('assigned', 'shipped')).toEqual(['building', 'review', 'testing', 'shipped']);
    expect(movesTo('building', 'testing')).toEqual(['review', 'testing']);
    expect(movesTo('testing', 'building')).toEqual(['building']);
    expect(movesTo('review', 'review')).toEqual([]);
    expect(movesTo('testing', 'review')).toEqual([]);
    expect(movesTo('review', 'failed')).toEqual(['failed']);
  });
});

describe('durations, statuses, backoff, margins', () => {
  it('parses and prints durations', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('2')).toBe(2000);
    expect(() => parseDuration('soon')).toThrow(/not a duration/);
    expect(() => parseDuration('5 m')).toThrow(/not a duration/);
    expect(formatDuration(2000)).toBe('2s');
    expect(formatDuration(125_000)).toBe('2m05s');
    expect(formatDuration(7_800_000)).toBe('2h10m');
  });

  it('reads the shell’s 128 + N as signal N', () => {
    expect(signalOfShellStatus(137)).toBe('SIGKILL');
    expect(signalOfShellStatus(143)).toBe('SIGTERM');
    expect(signalOfShellStatus(1)).toBeNull();
    expect(signalOfShellStatus(128)).toBeNull();
    expect(signalOfShellStatus(null)).toBeNull();
  });

  it('backs off with full jitter under a doubling ceiling, never below Retry-After', () => {
    const o = { baseMs: 1000, capMs: 30_000 };
    expect(backoffMs(0, { ...o, random: () => 0.999 })).toBeLessThan(1000);
    expect(backoffMs(3, { ...o, random: () => 0.5 })).toBe(4000);
    expect(backoffMs(20, { ...o, random: () => 0.5 })).toBe(15_000);
    expect(backoffMs(0, { ...o, random: () => 0 }, 7000)).toBe(7000);
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter('soon')).toBeNull();
  });

  it('keeps a sixth of the lease (at least 2 s, at most a third) as the safety margin', () => {
    expect(safetyMargin(60_000)).toBe(10_000);
    expect(safetyMargin(6000)).toBe(2000);
    expect(safetyMargin(3000)).toBe(1000);
  });

  it('the usage meter hands out each increment once; a report that failed can be put back', () => {
    const m = new UsageMeter();
    m.add({ tokensIn: 10, costUsd: 0.1 }, 'm1');
    m.add({ tokensIn: 5, costUsd: 0.2, turns: -3 });
    const first = m.take();
    expect(first).toEqual({ tokensIn: 15, costUsd: 0.3, model: 'm1' });
    expect(m.take()).toBeUndefined();
    m.putBack(first);
    expect(m.take()).toEqual(first);
  });
});
