/**
 * Reporting stored events to `subscribe` listeners (metrics, long-poll wake-ups) and to
 * live projections: every stored event exactly once across all processes, and only once
 * its commit succeeded.
 *
 * Each append stamps the event with its writer (this process and the append's number).
 * The process whose append stored the event reports it, once `store.sync(mark)` says the
 * commit of that append succeeded; another process that finds it already stored stays
 * silent. An append whose outcome is unknown (a lost answer, a failed group commit) is
 * remembered and settled by reading the event back: there with this append's stamp →
 * reported then; someone else's → theirs to report; absent → looked for again later
 * (whoever appends it reports it), and forgotten after {@link SETTLE_TRIES} looks.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from './core.js';
import type { DocumentStore, Stored } from './document-store.port.js';
import type { LiveProjections } from './projections.js';
import type { EventDoc } from './types.js';
import { Yielder } from './yielder.js';

type Listener = (event: EventDoc) => void;

/** Event appends with an unknown outcome remembered for settling, at most. */
const MAX_UNCERTAIN = 10_000;
/** Unsettled appends looked at by one operation (a sweep looks at all of them). */
const SETTLE_PER_OPERATION = 16;
/**
 * Times an unsettled append is looked for in vain before it is forgotten. An event of a
 * pending outbox is always appended by someone eventually (then it is found); one that
 * is never found belonged to a write that was lost or a job that is gone.
 */
const SETTLE_TRIES = 64;

/** An event reported once the commit of its append is known to have succeeded. */
interface Appended {
  event: EventDoc;
  /** The store's mark taken before the append (`sync(mark)` covers it). */
  mark: number;
}

/** The event as clients see it: without the writer stamp. */
export function publicEvent(e: EventDoc): EventDoc {
  if (e.writer === undefined) return e;
  const { writer: _w, ...rest } = e;
  return rest;
}

export class EventReporter {
  readonly #store: DocumentStore;
  readonly #log: Logger;
  readonly projections: LiveProjections | null;
  readonly #listeners = new Set<Listener>();
  /** This process's stamp; each append adds its number. */
  readonly #writer = randomBytes(9).toString('base64url');
  #appends = 0;
  /** Events this process stored, to report once their commit is known good. */
  #appended: Appended[] = [];
  /** Appends with an unknown outcome: event id → its job, the stamp it carried, looks so far. */
  readonly #uncertain = new Map<string, { jobId: string; stamp: string; tries: number }>();

  constructor(store: DocumentStore, log: Logger, projections: LiveProjections | null) {
    this.#store = store;
    this.#log = log;
    this.projections = projections;
  }

  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A copy of `event` carrying a fresh writer stamp of this process, to be appended. */
  stamp(event: EventDoc): EventDoc {
    return { ...event, writer: `${this.#writer}.${++this.#appends}` };
  }

  /** Appends a stream event stamped with this process as its writer (see the header). */
  async append(event: EventDoc): Promise<void> {
    const mark = this.#store.mark();
    const stamped = this.stamp(event);
    let stored: boolean;
    try {
      stored = await this.#store.events.append(stamped);
    } catch (e) {
      this.remember(stamped);
      throw e;
    }
    if (stored) {
      this.stored(stamped, mark);
      return;
    }
    // Already stored: by our own earlier append whose answer was lost, or by another.
    const earlier = this.#uncertain.get(event.id);
    if (earlier === undefined) return;
    this.#uncertain.delete(event.id);
    const found = await this.#store.events.read(event.jobId, event.id);
    if (found !== null && found.writer === earlier.stamp) {
      const { _etag: _e, ...mine } = found;
      this.#appended.push({ event: mine, mark: this.#store.mark() });
    }
  }

  /** Records events this process stored (stamped) at `mark`: reported once committed. */
  stored(event: EventDoc, mark: number): void {
    this.#uncertain.delete(event.id);
    this.#appended.push({ event, mark });
  }

  /**
   * Waits until every write since `from` is durable, then reports the events appended
   * since then. If a commit since `from` failed, those events may be gone: they are
   * settled later by reading them back, and the failure is thrown.
   */
  async settle(from: number): Promise<void> {
    // An append this process could not confirm is settled at its next operation (or sweep).
    if (this.#uncertain.size > 0) {
      await this.settleUncertain(SETTLE_PER_OPERATION).catch(() => {});
    }
    try {
      await this.#store.sync(from);
    } catch (e) {
      const lost = this.#appended.filter((a) => a.mark >= from);
      this.#appended = this.#appended.filter((a) => a.mark < from);
      for (const a of lost) this.remember(a.event);
      throw e;
    }
    if (this.#appended.length === 0) return;
    const ready = this.#appended.filter((a) => a.mark >= from);
    if (ready.length === 0) return;
    this.#appended =
      ready.length === this.#appended.length ? [] : this.#appended.filter((a) => a.mark < from);
    for (const a of ready) this.#report(a.event);
  }

  #report(event: EventDoc): void {
    this.projections?.apply(event);
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (e) {
        this.#log.warn({ err: e }, 'event listener threw');
      }
    }
  }

  /** Remembers an appended event (stamped) whose append or commit had an unknown outcome. */
  remember(event: EventDoc): void {
    if (this.#uncertain.size >= MAX_UNCERTAIN) {
      const oldest = this.#uncertain.keys().next().value;
      if (oldest !== undefined) this.#uncertain.delete(oldest);
      this.#log.warn({ eventId: oldest }, 'too many unsettled event appends; forgetting one');
    }
    this.#uncertain.set(event.id, { jobId: event.jobId, stamp: event.writer ?? '', tries: 0 });
  }

  /** Settles appends with an unknown outcome by reading the events back (see the header). */
  async settleUncertain(limit = Number.POSITIVE_INFINITY): Promise<void> {
    const y = new Yielder();
    let looked = 0;
    for (const [id, entry] of [...this.#uncertain]) {
      if (looked++ >= limit) break;
      await y.next();
      // Taken out while it is looked at, so two settles never both report it.
      if (this.#uncertain.get(id) !== entry) continue;
      this.#uncertain.delete(id);
      let found: Stored<EventDoc> | null;
      try {
        found = await this.#store.events.read(entry.jobId, id);
      } catch (e) {
        if (!this.#uncertain.has(id)) this.#uncertain.set(id, entry);
        throw e;
      }
      if (found === null) {
        if (++entry.tries >= SETTLE_TRIES) {
          this.#log.warn(
            { eventId: id, jobId: entry.jobId },
            'an unsettled event append was never found; forgetting it',
          );
        } else if (!this.#uncertain.has(id)) {
          // Back at the end of the line, so the others get their turn.
          this.#uncertain.set(id, entry);
        }
        continue;
      }
      if (found.writer === entry.stamp) {
        const { _etag: _e, ...event } = found;
        this.#appended.push({ event, mark: this.#store.mark() });
      }
    }
  }
}
