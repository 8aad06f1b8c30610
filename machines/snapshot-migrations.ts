/**
 * Snapshot migrations: how a job snapshot persisted by an older job machine becomes one
 * the current machine can restore.
 *
 * Every job document stores its XState snapshot beside the `machineVersion` that wrote
 * it. When the machine changes shape (a state renamed or added, a context field added
 * or renamed), `JOB_MACHINE_VERSION` goes up by one and a migration from the previous
 * version is added here. The runtime applies the chain N → N + 1 → … → current when it
 * reads a job to decide on it; the job's next write stores the migrated snapshot and the
 * current version. A build with no path from a stored version refuses that job.
 *
 * Pure: a migration gets a JSON copy of the persisted snapshot (it may change it in
 * place) and returns the next version's; it never reads a clock or does I/O.
 *
 * This module imports nothing from the project (layer rule).
 */
import { JOB_MACHINE_VERSION } from './job.machine.js';

/** A persisted snapshot as stored in the job document (JSON). */
export interface PersistedSnapshot {
  value: unknown;
  context: Record<string, unknown>;
  [key: string]: unknown;
}

/** Turns a snapshot persisted by machine version `from` into one of version `from + 1`. */
export interface SnapshotMigration {
  readonly from: number;
  /** What changed (for logs and reviewers). */
  readonly description: string;
  migrate(snapshot: PersistedSnapshot): PersistedSnapshot;
}

/** A machine's versions: the one this build writes and a migration from each older one. */
export interface SnapshotMigrations {
  /** The version written with every snapshot (≥ 1). */
  readonly version: number;
  /** One migration from each version 1 … `version - 1`, in any order. */
  readonly migrations: readonly SnapshotMigration[];
}

/**
 * The job machine's migrations. Empty while the machine is at version 1; a bump of
 * `JOB_MACHINE_VERSION` without a migration here fails the registry test and the
 * coordinator's start.
 */
export const JOB_SNAPSHOT_MIGRATIONS: SnapshotMigrations = {
  version: JOB_MACHINE_VERSION,
  migrations: [],
};

/**
 * What is wrong with a registry: versions 1 … `version - 1` that have no migration, a
 * version with two, or a migration from a version that is not older than `version`.
 * Empty when every version this build knows of can be brought to the current one.
 */
export function registryProblems(registry: SnapshotMigrations): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(registry.version) || registry.version < 1) {
    problems.push(`version must be a whole number ≥ 1, got ${registry.version}`);
    return problems;
  }
  const count = new Map<number, number>();
  for (const m of registry.migrations) count.set(m.from, (count.get(m.from) ?? 0) + 1);
  for (let v = 1; v < registry.version; v++) {
    const n = count.get(v) ?? 0;
    if (n === 0) problems.push(`no migration from version ${v} to ${v + 1}`);
    if (n > 1) problems.push(`${n} migrations from version ${v}`);
  }
  for (const from of count.keys()) {
    if (!Number.isInteger(from) || from < 1 || from >= registry.version) {
      problems.push(
        `a migration from version ${from}, which is not older than ${registry.version}`,
      );
    }
  }
  return problems;
}

/**
 * Brings a snapshot persisted by version `from` to the registry's current version by
 * applying each step in turn. Returns the snapshot unchanged (same object) when `from`
 * is current, and null when there is no path (a newer version, or a missing step).
 * `snapshot` itself is never changed: the chain works on a JSON copy.
 */
export function migrateSnapshot(
  registry: SnapshotMigrations,
  from: number,
  snapshot: PersistedSnapshot,
): PersistedSnapshot | null {
  if (from === registry.version) return snapshot;
  if (!Number.isInteger(from) || from < 1 || from > registry.version) return null;
  let current = JSON.parse(JSON.stringify(snapshot)) as PersistedSnapshot;
  for (let v = from; v < registry.version; v++) {
    const step = registry.migrations.find((m) => m.from === v);
    if (step === undefined) return null;
    current = step.migrate(current);
  }
  return current;
}
