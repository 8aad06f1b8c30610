/**
 * The snapshot migration registry: the job machine's registry covers every version this
 * build knows of; a registry with a gap, a duplicate or a step from the future is
 * reported; the chain is applied in order, on a copy; `restoreSnapshot` migrates an
 * older snapshot and refuses one with no path.
 */
import { describe, expect, it } from 'vitest';
import { initialTransition } from 'xstate';
import {
  JOB_MACHINE_VERSION,
  JOB_SNAPSHOT_MIGRATIONS,
  jobMachine,
  migrateSnapshot,
  type PersistedSnapshot,
  registryProblems,
  type SnapshotMigration,
} from '../../machines/index.js';
import { isFleetError } from '../../runtime/errors.js';
import { persistSnapshot, restoreSnapshot } from '../../runtime/job-draft.js';

const step = (from: number): SnapshotMigration => ({
  from,
  description: `step ${from}`,
  migrate: (s) => {
    s.context.trail = [...((s.context.trail as number[] | undefined) ?? []), from];
    return s;
  },
});

const snapshot = (): PersistedSnapshot => ({
  status: 'active',
  value: 'queued',
  context: { attempt: 0 },
});

describe('the job machine registry', () => {
  it('writes JOB_MACHINE_VERSION and has a migration from every version 1 … current - 1', () => {
    expect(JOB_SNAPSHOT_MIGRATIONS.version).toBe(JOB_MACHINE_VERSION);
    expect(registryProblems(JOB_SNAPSHOT_MIGRATIONS)).toEqual([]);
    for (let v = 1; v < JOB_MACHINE_VERSION; v++) {
      expect(
        JOB_SNAPSHOT_MIGRATIONS.migrations.filter((m) => m.from === v),
        `from ${v}`,
      ).toHaveLength(1);
    }
  });
});

describe('registryProblems', () => {
  it('names a missing step, a duplicate and a step that is not from an older version', () => {
    expect(registryProblems({ version: 3, migrations: [step(1), step(2)] })).toEqual([]);
    expect(registryProblems({ version: 3, migrations: [step(1)] })).toEqual([
      'no migration from version 2 to 3',
    ]);
    expect(registryProblems({ version: 2, migrations: [step(1), step(1)] })).toEqual([
      '2 migrations from version 1',
    ]);
    expect(registryProblems({ version: 2, migrations: [step(1), step(2)] })).toEqual([
      'a migration from version 2, which is not older than 2',
    ]);
    expect(registryProblems({ version: 0, migrations: [] })).toHaveLength(1);
  });
});

describe('migrateSnapshot', () => {
  const registry = { version: 3, migrations: [step(2), step(1)] };

  it('applies each step in order, on a copy', () => {
    const original = snapshot();
    const migrated = migrateSnapshot(registry, 1, original);
    expect(migrated?.context.trail).toEqual([1, 2]);
    expect(original).toEqual(snapshot());
    expect(migrateSnapshot(registry, 2, snapshot())?.context.trail).toEqual([2]);
  });

  it('returns the same snapshot at the current version, and null without a path', () => {
    const s = snapshot();
    expect(migrateSnapshot(registry, 3, s)).toBe(s);
    expect(migrateSnapshot(registry, 4, s)).toBeNull();
    expect(migrateSnapshot(registry, 0, s)).toBeNull();
    expect(migrateSnapshot({ version: 3, migrations: [step(2)] }, 1, s)).toBeNull();
  });
});

describe('restoreSnapshot with a registry', () => {
  const v1 = persistSnapshot(initialTransition(jobMachine, { maxRetries: 3 })[0]);
  const registry = {
    version: 2,
    migrations: [
      {
        from: 1,
        description: 'mark',
        migrate: (s: PersistedSnapshot) => ({ ...s, context: { ...s.context, revision: 7 } }),
      },
    ],
  };

  it('migrates an older snapshot before restoring it', () => {
    const restored = restoreSnapshot(
      { id: 'j', machineVersion: 1, snapshot: v1 },
      jobMachine,
      registry,
    );
    expect(v1.context).toMatchObject({ revision: 1 }); // the stored snapshot is untouched
    expect(restored.value).toBe('queued');
    expect(restored.context.revision).toBe(7);
  });

  it('refuses a newer version, and a migration that breaks the snapshot', () => {
    let caught: unknown;
    try {
      restoreSnapshot({ id: 'j-9', machineVersion: 3, snapshot: v1 }, jobMachine, registry);
    } catch (e) {
      caught = e;
    }
    expect(isFleetError(caught, 'SNAPSHOT_VERSION')).toBe(true);
    expect((caught as Error).message).toContain('j-9');
    const broken = {
      version: 2,
      migrations: [{ from: 1, description: 'bad', migrate: () => ({ value: 1, context: {} }) }],
    };
    expect(() =>
      restoreSnapshot({ id: 'j', machineVersion: 1, snapshot: v1 }, jobMachine, broken),
    ).toThrow(expect.objectContaining({ code: 'SNAPSHOT_VERSION' }));
  });
});
