/**
 * Fleet's state machines. Pure: no I/O, no clock, nothing imported from the project.
 */
export {
  holdsLease,
  JOB_MACHINE_EVENT_TYPES,
  JOB_MACHINE_VERSION,
  JOB_STATES,
  type JobContext,
  type JobDeadReason,
  type JobInput,
  type JobMachine,
  type JobMachineEvent,
  type JobMachineEventType,
  type JobRunExit,
  jobMachine,
  jobMachineSetup,
  WORKER_EVENT_TYPES,
} from './job.machine.js';
export {
  JOB_SNAPSHOT_MIGRATIONS,
  migrateSnapshot,
  type PersistedSnapshot,
  registryProblems,
  type SnapshotMigration,
  type SnapshotMigrations,
} from './snapshot-migrations.js';
export {
  jitteredDelay,
  SUPERVISOR_STATES,
  type SupervisorContext,
  type SupervisorInput,
  type SupervisorMachine,
  type SupervisorMachineEvent,
  type SupervisorSweepOutput,
  supervisorMachine,
  supervisorMachineSetup,
} from './supervisor.machine.js';
