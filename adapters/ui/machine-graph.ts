/**
 * A machine's definition as a plain graph: its states and every transition (one per
 * event and guarded branch), read from the xstate machine itself with @xstate/graph's
 * `toDirectedGraph` plus the eventless (`always`) transitions it leaves out. Everything
 * the inspector draws and `fleet machines` prints starts here, so a state or transition
 * added to `machines/` shows up without anyone drawing it.
 */
import { createHash } from 'node:crypto';
import { type DirectedGraphNode, getStateNodes, toDirectedGraph } from '@xstate/graph';
import type { AnyStateMachine } from 'xstate';

/** One state of a machine (top-level states only: Fleet's machines are flat). */
export interface GraphState {
  /** The state's key, e.g. `queued` (what snapshots hold as `value`). */
  readonly id: string;
  /** True for the machine's initial state. */
  readonly initial: boolean;
  /** True for a final state. */
  readonly final: boolean;
  /** True when the state is only passed through (it has eventless transitions). */
  readonly transient: boolean;
  /** The state's description from the definition, if any. */
  readonly description: string | null;
}

/** One transition branch: an event (with its guard) taking `from` to `to`. */
export interface GraphTransition {
  readonly from: string;
  /** The target; equal to `from` for a self-transition or a targetless one. */
  readonly to: string;
  /** A readable event name: `CLAIM`, `after interval`, `done: sweep`, `[guard]` or `always` (eventless). */
  readonly event: string;
  /** xstate's own event type (`xstate.after.interval.supervisor.idle`), or null when eventless. */
  readonly eventType: string | null;
  /** The guard, readable (`isHolder && depsMet`), or null. */
  readonly guard: string | null;
  /** Action names, in order. */
  readonly actions: readonly string[];
  /** True when the transition has no target (the state is not left: a self-loop). */
  readonly targetless: boolean;
}

/** A machine as a graph: states in definition order, transitions in definition order. */
export interface MachineGraph {
  /** The machine's id (`job`, `supervisor`). */
  readonly id: string;
  readonly states: readonly GraphState[];
  readonly transitions: readonly GraphTransition[];
  /**
   * A hash of the states and transitions: it changes exactly when the drawing would,
   * so layouts are cached under it ("laid out once per machine version").
   */
  readonly version: string;
}

/** One distinct (from, to) pair of a graph with the events that take it. */
export interface GraphEdge {
  readonly from: string;
  readonly to: string;
  /** Distinct event names, in definition order. */
  readonly events: readonly string[];
  /** `from->to`: the `data-edge` attribute of the drawing. */
  readonly key: string;
}

/** The `data-edge` key of a (from, to) pair. */
export const edgeKey = (from: string, to: string): string => `${from}->${to}`;

interface GuardLike {
  type?: unknown;
  guards?: unknown[];
  check?: { name?: string };
}

/** A guard as text: names, and `and`/`or`/`not` combinations of them. */
function guardText(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  const g = guard as GuardLike;
  if (Array.isArray(g.guards)) {
    const parts = g.guards.map((x) => guardText(x) ?? '?');
    const kind = g.check?.name ?? '';
    if (kind.includes('Not'))
      return `!${parts.length === 1 ? parts[0] : `(${parts.join(' && ')})`}`;
    return parts.join(kind.includes('Or') ? ' || ' : ' && ');
  }
  if (typeof g.type === 'string') return g.type;
  return 'guard';
}

function actionText(action: unknown): string {
  if (typeof action === 'string') return action;
  if (typeof action === 'function') return action.name || 'action';
  const a = action as { type?: unknown };
  return typeof a?.type === 'string' ? a.type : 'action';
}

/** A readable name for xstate's internal event types. */
function eventText(type: string, invokeSrc: Map<string, string>): string {
  const after = /^xstate\.after\.([^.]+)\./.exec(type);
  if (after) return `after ${after[1]}`;
  const done = /^xstate\.(done|error)\.actor\.(.+)$/.exec(type);
  if (done) return `${done[1]}: ${invokeSrc.get(done[2]!) ?? 'actor'}`;
  return type;
}

const leaf = (id: string): string => id.slice(id.lastIndexOf('.') + 1);

interface RawTransition {
  target?: readonly { key: string }[] | undefined;
  guard?: unknown;
  actions?: readonly unknown[];
}

/**
 * Reads `machine` into a {@link MachineGraph}. Only top-level states are drawn (Fleet's
 * machines are flat); a nested machine would show its top-level states.
 */
export function machineGraph(machine: AnyStateMachine): MachineGraph {
  const root = machine.root;
  const tops = getStateNodes(machine).filter((n) => n.parent === root);
  const invokeSrc = new Map<string, string>();
  for (const node of tops) {
    for (const inv of node.invoke) {
      invokeSrc.set(inv.id, typeof inv.src === 'string' ? inv.src : 'actor');
    }
  }
  const states: GraphState[] = tops.map((node) => ({
    id: node.key,
    initial: root.initial?.target?.some((t) => t === node) ?? false,
    final: node.type === 'final',
    transient: node.always !== undefined && node.always.length > 0,
    description: node.description ?? null,
  }));
  const transitions: GraphTransition[] = [];
  const directed: DirectedGraphNode = toDirectedGraph(machine);
  for (const child of directed.children) {
    for (const edge of child.edges) {
      const t = edge.transition as RawTransition;
      transitions.push({
        from: leaf(edge.source.id),
        to: leaf(edge.target.id),
        event: eventText(edge.label.text, invokeSrc),
        eventType: edge.label.text,
        guard: guardText(t.guard),
        actions: (t.actions ?? []).map(actionText),
        targetless: t.target === undefined || t.target.length === 0,
      });
    }
    // Eventless transitions: toDirectedGraph leaves them out. Named by their guard.
    for (const t of (child.stateNode.always ?? []) as readonly RawTransition[]) {
      const guard = guardText(t.guard);
      for (const target of t.target ?? []) {
        transitions.push({
          from: child.stateNode.key,
          to: target.key,
          event: guard === null ? 'always' : `[${guard}]`,
          eventType: null,
          guard,
          actions: (t.actions ?? []).map(actionText),
          targetless: false,
        });
      }
    }
  }
  const version = createHash('sha256')
    .update(JSON.stringify({ id: machine.id, states, transitions }))
    .digest('hex')
    .slice(0, 16);
  return { id: machine.id, states, transitions, version };
}

/** The distinct (from, to) pairs of `graph`, in definition order, with their events. */
export function graphEdges(graph: MachineGraph): GraphEdge[] {
  const byKey = new Map<string, { from: string; to: string; events: string[] }>();
  for (const t of graph.transitions) {
    const key = edgeKey(t.from, t.to);
    let e = byKey.get(key);
    if (e === undefined) {
      e = { from: t.from, to: t.to, events: [] };
      byKey.set(key, e);
    }
    if (!e.events.includes(t.event)) e.events.push(t.event);
  }
  return [...byKey.entries()].map(([key, e]) => ({ ...e, key }));
}
