/**
 * State the inspector's routes share for the life of one plugin registration: the
 * activity tracker (recent events, throughput), the registry of open event streams
 * (ended when the server closes), and the stream timings.
 */
import { randomBytes } from 'node:crypto';
import { ActivityTracker, type Coordinator } from '../../runtime/index.js';
import type { FleetApp } from './route-context.js';

/** Stream timings, ms. */
export interface StreamTimings {
  /** A comment line on every open stream this often (keeps proxies from closing it). */
  readonly heartbeatMs: number;
  /** A job stream re-reads the store this often without a wake-up (other processes' events). */
  readonly recheckMs: number;
}

export interface InspectorContext {
  readonly activity: ActivityTracker;
  /** This registration's id in product-stream event ids (`<boot>-<feedSeq>`). */
  readonly bootId: string;
  readonly timings: StreamTimings;
  /** Registers an open stream's `end`; returns the undo (call it when the stream ends). */
  track(end: () => void): () => void;
}

/**
 * Creates the context and ties it to `app`'s lifetime: open streams end before Fastify
 * waits for in-flight requests (preClose), the tracker unsubscribes on close.
 */
export function createInspectorContext(
  app: FleetApp,
  coordinator: Coordinator,
  timings: StreamTimings,
): InspectorContext {
  const activity = new ActivityTracker(coordinator);
  const open = new Set<() => void>();
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    for (const end of [...open]) end();
    open.clear();
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    activity.close();
    done();
  });
  return {
    activity,
    bootId: randomBytes(6).toString('base64url'),
    timings,
    track(end) {
      if (closing) {
        end();
        return () => {};
      }
      open.add(end);
      return () => open.delete(end);
    },
  };
}
