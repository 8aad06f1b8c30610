/**
 * Time is injected: no code in machines/ or runtime/ reads the system clock except
 * `systemClock` here. Tests and the simulator use `SimulatedClock`.
 */

/** A source of the current time, in ms since the Unix epoch. */
export interface Clock {
  now(): number;
}

/** The real clock. */
export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told to. */
export class SimulatedClock implements Clock {
  #now: number;
  /** @param start - initial time in ms since the epoch. @defaultValue 2026-01-01T00:00:00Z */
  constructor(start = Date.parse('2026-01-01T00:00:00.000Z')) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  /** Move forward by `ms` (never backward). */
  advance(ms: number): void {
    if (ms < 0) throw new RangeError('a simulated clock only moves forward');
    this.#now += ms;
  }
  /** Jump to an absolute time (forward or backward: clock jumps are a fault the simulator injects). */
  set(ms: number): void {
    this.#now = ms;
  }
}

let lastMs = Number.NaN;
let lastIso = '';

/** ms since the epoch → ISO-8601 UTC with milliseconds (the last answer is reused: hot path). */
export function iso(ms: number): string {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
}
/** ISO-8601 → ms since the epoch. */
export const ms = (isoTime: string): number => Date.parse(isoTime);
