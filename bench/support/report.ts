/**
 * Small helpers shared by the benchmarks: garbage collection when exposed, heap
 * readings, a seeded random source, number formatting and plain-text tables.
 * Benchmarks print; they never assert on timings.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';

/** Runs a full GC when node was started with `--expose-gc`; returns whether it could. */
export function collectGarbage(): boolean {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') return false;
  gc();
  gc();
  return true;
}

/** True when `collectGarbage` can force a collection. */
export const gcExposed = (): boolean => typeof (globalThis as { gc?: unknown }).gc === 'function';

/** Collects garbage (when exposed), then idles for `ms` so background GC work drains. */
export async function settle(ms: number): Promise<void> {
  collectGarbage();
  await new Promise((resolve) => setTimeout(resolve, ms));
  collectGarbage();
}

/** Heap used, in MB (after a GC when one can be forced). */
export function heapUsedMb(): number {
  collectGarbage();
  return process.memoryUsage().heapUsed / 1e6;
}

export { seededRandom } from '../../test/support/random.js';

/** `1234567` → `1,234,567` (rounded). */
export const int = (n: number): string => Math.round(n).toLocaleString('en-US');

/** `1000` → `1k`, `1000000` → `1M`. */
export function count(n: number): string {
  if (n >= 1e6 && n % 1e6 === 0) return `${n / 1e6}M`;
  if (n >= 1e3 && n % 1e3 === 0) return `${n / 1e3}k`;
  return int(n);
}

/** The q-quantile (0..1) of `values` (sorts a copy). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

/** A plain-text table; columns after the first are right-aligned. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** Prints one line to stdout. */
export function say(text = ''): void {
  process.stdout.write(`${text}\n`);
}

/** Garbage-collection pauses observed while measuring (from `perf_hooks` gc entries). */
export interface GcTotals {
  count: number;
  ms: number;
  /** Of which mark-compact (major) collections. */
  majorCount: number;
  majorMs: number;
}

/**
 * Records every GC pause while started; `within` sums those that began inside the
 * given [start, end] windows (performance.now() times), so untimed work between
 * windows is not counted.
 */
export class GcMeter {
  readonly #entries: { start: number; duration: number; major: boolean }[] = [];
  readonly #observer = new PerformanceObserver((list) => this.#record(list.getEntries()));

  start(): void {
    this.#observer.observe({ entryTypes: ['gc'] });
  }

  /** Stops observing, after letting pending entries arrive. */
  async stop(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    this.#record(this.#observer.takeRecords());
    this.#observer.disconnect();
  }

  #record(entries: readonly PerformanceEntry[]): void {
    for (const e of entries) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind;
      this.#entries.push({
        start: e.startTime,
        duration: e.duration,
        major: kind === constants.NODE_PERFORMANCE_GC_MAJOR,
      });
    }
  }

  within(windows: readonly (readonly [number, number])[]): GcTotals {
    const totals: GcTotals = { count: 0, ms: 0, majorCount: 0, majorMs: 0 };
    for (const e of this.#entries) {
      if (!windows.some(([a, b]) => e.start >= a && e.start <= b)) continue;
      totals.count++;
      totals.ms += e.duration;
      if (e.major) {
        totals.majorCount++;
        totals.majorMs += e.duration;
      }
    }
    return totals;
  }
}

/**
 * CPU time of the whole machine and of watched processes, in clock ticks (Linux `/proc`):
 * `own` is their sum, `each` per process in the order asked.
 */
export interface CpuSample {
  busy: number;
  total: number;
  own: number;
  each: number[];
}

/** utime + stime of one process, in ticks. */
function processTicks(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After "pid (comm) ": state is field 3, utime field 14, stime field 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

/**
 * A reading of `/proc/stat` and of the watched processes (this one by default), or null
 * where there is no `/proc`.
 */
export function cpuSample(pids: readonly (number | 'self')[] = ['self']): CpuSample | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    // cpu user nice system idle iowait irq softirq steal ...
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const each = pids.map(processTicks);
    const own = each.reduce((a, b) => a + b, 0);
    if (![total, idle, own].every(Number.isFinite)) return null;
    return { busy: total - idle, total, own, each };
  } catch {
    return null;
  }
}

/** Share of one core that watched process `i` used between two samples. */
export function coreShare(a: CpuSample | null, b: CpuSample | null, i: number): number | null {
  if (a === null || b === null || b.total <= a.total) return null;
  const wallTicks = (b.total - a.total) / cpus().length;
  return ((b.each[i] ?? 0) - (a.each[i] ?? 0)) / wallTicks;
}

/**
 * Share of the machine's CPU capacity (all cores) that processes other than the watched ones used between
 * two samples: a noisy-neighbour indicator. Null when unknown.
 */
export function othersShare(a: CpuSample | null, b: CpuSample | null): number | null {
  if (a === null || b === null || b.total <= a.total) return null;
  return Math.max(0, (b.busy - a.busy - (b.own - a.own)) / (b.total - a.total));
}
