/**
 * Usage from real agents' machine-readable output (`--insights-from claude|codex`): the
 * child's stdout is read line by line and turned into insight increments.
 *
 * **Claude Code** (`claude -p --output-format stream-json`): each `assistant` line
 * carries its API message with `usage`; one message is streamed as several lines (one
 * per content block) that repeat the same `message.id` and usage, so a message counts
 * once. The final `result` line carries the session's totals: `usage`,
 * `total_cost_usd` and `num_turns`; where a total is larger than what the messages
 * added up to, the difference is added (and cost and turns come from it alone).
 * `tokensIn` = `input_tokens` + `cache_creation_input_tokens`, `tokensCached` =
 * `cache_read_input_tokens`, `tokensOut` = `output_tokens`; `toolCalls` counts distinct
 * `tool_use` blocks; `model` is the message's model.
 *
 * **Codex** (`codex exec --json`): each `turn.completed` line carries that turn's
 * `usage` (`input_tokens` including `cached_input_tokens`, `output_tokens`, and
 * `reasoning_output_tokens` when present): `tokensIn` = input − cached, `tokensCached` =
 * cached, `tokensOut` = output + reasoning, one turn each; `toolCalls` counts distinct
 * completed items that are commands, MCP tool calls or web searches. Codex reports no
 * cost.
 *
 * Lines that are not JSON (or not these shapes) are ignored.
 */
import type { UsageField, UsageIncrements, UsageMeter } from './usage-meter.js';

/** A transcript format the agent can read. */
export const TRANSCRIPT_FORMATS = ['claude', 'codex'] as const;
export type TranscriptFormat = (typeof TRANSCRIPT_FORMATS)[number];

/** Feeds stdout lines of one run into a meter. */
export interface TranscriptReader {
  line(text: string): void;
}

type Json = Record<string, unknown>;

const obj = (v: unknown): Json | null =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null;
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);

function parse(text: string): Json | null {
  const t = text.trim();
  if (!t.startsWith('{')) return null;
  try {
    return obj(JSON.parse(t));
  } catch {
    return null;
  }
}

/** A reader for `format` that adds what it finds to `meter`. */
export function transcriptReader(format: TranscriptFormat, meter: UsageMeter): TranscriptReader {
  return format === 'claude' ? new ClaudeReader(meter) : new CodexReader(meter);
}

class ClaudeReader implements TranscriptReader {
  readonly #meter: UsageMeter;
  readonly #messages = new Set<string>();
  readonly #tools = new Set<string>();
  /** Sums over distinct messages. */
  readonly #summed = { input: 0, cacheCreate: 0, cacheRead: 0, output: 0 };
  /** What the result line said (totals). */
  #result: { input: number; cacheCreate: number; cacheRead: number; output: number } | null = null;
  #cost = 0;
  #turns = 0;
  /** What was already added to the meter, by field. */
  readonly #reported: Partial<Record<UsageField, number>> = {};

  constructor(meter: UsageMeter) {
    this.#meter = meter;
  }

  line(text: string): void {
    const j = parse(text);
    if (!j) return;
    let model: string | undefined;
    if (j.type === 'assistant') {
      const message = obj(j.message);
      if (!message) return;
      const id = typeof message.id === 'string' ? message.id : null;
      const usage = obj(message.usage);
      if (usage && (id === null || !this.#messages.has(id))) {
        if (id !== null) this.#messages.add(id);
        this.#summed.input += num(usage.input_tokens);
        this.#summed.cacheCreate += num(usage.cache_creation_input_tokens);
        this.#summed.cacheRead += num(usage.cache_read_input_tokens);
        this.#summed.output += num(usage.output_tokens);
      }
      for (const block of Array.isArray(message.content) ? message.content : []) {
        const b = obj(block);
        if (b?.type === 'tool_use' && typeof b.id === 'string') this.#tools.add(b.id);
      }
      if (typeof message.model === 'string') model = message.model;
    } else if (j.type === 'result') {
      const usage = obj(j.usage) ?? {};
      this.#result = {
        input: num(usage.input_tokens),
        cacheCreate: num(usage.cache_creation_input_tokens),
        cacheRead: num(usage.cache_read_input_tokens),
        output: num(usage.output_tokens),
      };
      this.#cost = Math.max(this.#cost, num(j.total_cost_usd));
      this.#turns = Math.max(this.#turns, num(j.num_turns));
    } else {
      return;
    }
    const r = this.#result;
    const s = this.#summed;
    const totals: Record<UsageField, number> = {
      tokensIn: Math.max(s.input + s.cacheCreate, r ? r.input + r.cacheCreate : 0),
      tokensCached: Math.max(s.cacheRead, r?.cacheRead ?? 0),
      tokensOut: Math.max(s.output, r?.output ?? 0),
      costUsd: this.#cost,
      turns: this.#turns,
      toolCalls: this.#tools.size,
      filesChanged: 0,
      linesAdded: 0,
      linesDeleted: 0,
    };
    const increments: UsageIncrements = {};
    for (const [f, total] of Object.entries(totals) as [UsageField, number][]) {
      const d = total - (this.#reported[f] ?? 0);
      if (d > 0) {
        increments[f] = d;
        this.#reported[f] = total;
      }
    }
    this.#meter.add(increments, model);
  }
}

/** Item types that are tool calls. */
const CODEX_TOOL_ITEMS = new Set(['command_execution', 'mcp_tool_call', 'web_search']);

class CodexReader implements TranscriptReader {
  readonly #meter: UsageMeter;
  readonly #tools = new Set<string>();

  constructor(meter: UsageMeter) {
    this.#meter = meter;
  }

  line(text: string): void {
    const j = parse(text);
    if (!j) return;
    if (j.type === 'turn.completed') {
      const usage = obj(j.usage) ?? {};
      const input = num(usage.input_tokens);
      const cached = Math.min(num(usage.cached_input_tokens), input);
      this.#meter.add({
        tokensIn: input - cached,
        tokensCached: cached,
        tokensOut: num(usage.output_tokens) + num(usage.reasoning_output_tokens),
        turns: 1,
      });
    } else if (j.type === 'item.completed') {
      const item = obj(j.item);
      if (!item || !CODEX_TOOL_ITEMS.has(String(item.type))) return;
      if (typeof item.id === 'string') {
        if (this.#tools.has(item.id)) return;
        this.#tools.add(item.id);
      }
      this.#meter.add({ toolCalls: 1 });
    }
  }
}
