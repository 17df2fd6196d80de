/**
 * belay as a library: every CLI command is one of these functions. Runs
 * return a result (exit code, outcome, every revision's status, snapshot,
 * journal file); usage, lock and preflight refusals throw a BelayError.
 */
export {
  backup,
  history,
  listBackups,
  migrateUp,
  newRevision,
  plan,
  pruneBackups,
  recover,
  rehearse,
  restore,
  rollback,
  runHistory,
  status,
  verify,
  verifyBackup,
} from './api/commands.js';
export { clusterStart, clusterStatus, clusterStop, clusterUrl } from './api/cluster.js';
export type { Abandoned, BelayOptions, RunHandle, TargetInfo } from './api/options.js';
export { BelayError, EXIT, type ErrorCode } from './errors.js';
export type { BelayConfig } from './config/types.js';
export type { ConfigInput } from './config/schema.js';
export type { RunEvent, RunListener, StepName } from './events/run-events.js';
export type { RunResult, RevisionResult, SnapshotRef } from './runner/result/results.js';
export type { StatusReport } from './runner/commands/status.js';
export type { RunSummary } from './journal/run-store.js';
export type { Plan } from './runner/commands/plan.js';
export type { RunHistory, RunList } from './runner/commands/history.js';
export type { VerifyReport } from './runner/commands/verify-now.js';
export type { RehearsalReport } from './rehearse/report.js';
export type { Manifest } from './backup/manifest.js';
export type { RevisionContext } from './migrations/revision-context.js';
