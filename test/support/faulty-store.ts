/**
 * A store wrapper that injects failures: the next call of a chosen container method
 * throws (before it reaches the real store, or after it did — an "unknown outcome").
 * Used to cut the coordinator off between a job write and its outbox follow-up.
 *
 * For the simulator (test/sim) it also has:
 * - `late` faults: the caller hears a timeout at once, and the call reaches the store
 *   only when `applyLate()` is called (a request that timed out and landed later);
 * - an outage: while on, every call (or every write) fails before reaching the store;
 * - `onFault`: a listener told about every fault that fired, and `disarm()`.
 */
import type { DocumentStore } from '../../runtime/document-store.port.js';
import { FleetError } from '../../runtime/errors.js';

export type ContainerName =
  | 'jobs'
  | 'runs'
  | 'leases'
  | 'factories'
  | 'profiles'
  | 'events'
  | 'artifacts';

/** `before`: never reaches the store; `after`: applied, then an error; `late`: an error now, applied on `applyLate()`. */
export type FaultWhen = 'before' | 'after' | 'late';

interface Fault {
  container: ContainerName;
  method: string;
  when: FaultWhen;
  /** Skip this many matching calls first. */
  skip: number;
  /** Caller's tag, handed back to `onFault` listeners. */
  tag: unknown;
}

/** A fault that fired. */
export interface FiredFault {
  container: ContainerName;
  method: string;
  when: FaultWhen | 'outage';
  args: readonly unknown[];
  tag: unknown;
  /** Sequence number of this fault (1, 2, ...), also carried in the error's `extra.faultId`. */
  id: number;
}

const WRITE_METHODS = new Set(['create', 'replace', 'delete', 'append']);

export interface FaultyStore extends DocumentStore {
  /** Arms one fault for the next matching call (after `skip` matches). */
  failNext(
    container: ContainerName,
    method: string,
    options?: { when?: FaultWhen; skip?: number; tag?: unknown },
  ): void;
  /** Number of armed faults not yet triggered. */
  readonly pending: number;
  /** Drops every armed fault (late calls already queued stay queued). */
  disarm(): void;
  /** While set, every call (`all`) or every write (`writes`) fails before reaching the store. */
  setOutage(mode: 'all' | 'writes' | null): void;
  /** Applies the queued `late` calls in the order they were made; returns how many (their own errors are swallowed). */
  applyLate(): Promise<number>;
  /** Number of `late` calls not applied yet. */
  readonly lateCount: number;
  /** Drops the queued `late` calls without applying them (they never landed). */
  dropLate(): number;
  /** Calls `listener` with every fault that fires; returns an unsubscribe function. */
  onFault(listener: (fault: FiredFault) => void): () => void;
}

/** True when `e` is an error thrown by a `FaultyStore` fault. */
export function isInjectedFault(e: unknown): e is FleetError {
  return e instanceof FleetError && e.extra.injected === true;
}

export function faulty(inner: DocumentStore): FaultyStore {
  const faults: Fault[] = [];
  const late: Array<() => Promise<unknown>> = [];
  const listeners = new Set<(fault: FiredFault) => void>();
  let outage: 'all' | 'writes' | null = null;
  let fired = 0;

  const fire = (
    name: ContainerName,
    method: string,
    when: FiredFault['when'],
    args: unknown[],
    tag: unknown,
    detail: string,
  ): FleetError => {
    const id = ++fired;
    for (const l of listeners) l({ container: name, method, when, args, tag, id });
    return new FleetError('STORE_UNAVAILABLE', `${detail}: ${name}.${method}`, {
      extra: { injected: true, faultId: id },
    });
  };

  const wrap = <T extends object>(name: ContainerName, container: T): T =>
    new Proxy(container, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        const method = String(prop);
        const call = (args: unknown[]) =>
          (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        return async (...args: unknown[]) => {
          if (outage === 'all' || (outage === 'writes' && WRITE_METHODS.has(method))) {
            throw fire(name, method, 'outage', args, null, 'injected fault (outage)');
          }
          const i = faults.findIndex((f) => f.container === name && f.method === prop);
          const fault = i >= 0 ? faults[i] : undefined;
          if (fault && fault.skip > 0) fault.skip--;
          else if (fault) {
            faults.splice(i, 1);
            if (fault.when === 'before')
              throw fire(name, method, 'before', args, fault.tag, 'injected fault');
            if (fault.when === 'late') {
              // The request is in flight: it lands when the caller has long given up.
              const copy = structuredClone(args);
              late.push(() => call(copy));
              throw fire(name, method, 'late', args, fault.tag, 'injected fault (timed out)');
            }
            await call(args);
            throw fire(name, method, 'after', args, fault.tag, 'injected fault after apply');
          }
          return call(args);
        };
      },
    });
  const store: FaultyStore = {
    kind: `faulty-${inner.kind}`,
    jobs: wrap('jobs', inner.jobs),
    runs: wrap('runs', inner.runs),
    leases: wrap('leases', inner.leases),
    factories: wrap('factories', inner.factories),
    profiles: wrap('profiles', inner.profiles),
    events: wrap('events', inner.events),
    artifacts: wrap('artifacts', inner.artifacts),
    mark: () => inner.mark(),
    sync: (from?: number) => inner.sync(from),
    ping: () => inner.ping(),
    close: () => inner.close(),
    failNext(container, method, options = {}) {
      faults.push({
        container,
        method,
        when: options.when ?? 'before',
        skip: options.skip ?? 0,
        tag: options.tag,
      });
    },
    get pending() {
      return faults.length;
    },
    disarm() {
      faults.length = 0;
    },
    setOutage(mode) {
      outage = mode;
    },
    async applyLate() {
      const queued = late.splice(0);
      for (const apply of queued) {
        try {
          await apply();
        } catch {
          // A late write that lost its etag race (or found its id taken) is refused: fine.
        }
      }
      return queued.length;
    },
    get lateCount() {
      return late.length;
    },
    dropLate() {
      return late.splice(0).length;
    },
    onFault(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return store;
}
