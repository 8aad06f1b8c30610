/**
 * A store wrapper that injects failures: the next call of a chosen container method
 * throws (before it reaches the real store, or after it did — an "unknown outcome").
 * Used to cut the coordinator off between a job write and its outbox follow-up.
 */
import type { DocumentStore } from '../../runtime/document-store.port.js';
import { FleetError } from '../../runtime/errors.js';

type ContainerName = 'jobs' | 'runs' | 'leases' | 'factories' | 'profiles' | 'events' | 'artifacts';

interface Fault {
  container: ContainerName;
  method: string;
  /** `before`: the call never reaches the store; `after`: it is applied, then the caller sees an error. */
  when: 'before' | 'after';
  /** Skip this many matching calls first. */
  skip: number;
}

export interface FaultyStore extends DocumentStore {
  /** Arms one fault for the next matching call (after `skip` matches). */
  failNext(
    container: ContainerName,
    method: string,
    options?: { when?: 'before' | 'after'; skip?: number },
  ): void;
  /** Number of armed faults not yet triggered. */
  readonly pending: number;
}

export function faulty(inner: DocumentStore): FaultyStore {
  const faults: Fault[] = [];
  const wrap = <T extends object>(name: ContainerName, container: T): T =>
    new Proxy(container, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          const i = faults.findIndex((f) => f.container === name && f.method === prop);
          const fault = i >= 0 ? faults[i] : undefined;
          if (fault && fault.skip > 0) fault.skip--;
          else if (fault) {
            faults.splice(i, 1);
            if (fault.when === 'before')
              throw new FleetError('STORE_UNAVAILABLE', `injected fault: ${name}.${String(prop)}`);
            await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
            throw new FleetError(
              'STORE_UNAVAILABLE',
              `injected fault after apply: ${name}.${String(prop)}`,
            );
          }
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
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
    sync: () => inner.sync(),
    ping: () => inner.ping(),
    close: () => inner.close(),
    failNext(container, method, options = {}) {
      faults.push({ container, method, when: options.when ?? 'before', skip: options.skip ?? 0 });
    },
    get pending() {
      return faults.length;
    },
  };
  return store;
}
