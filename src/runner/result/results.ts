import type { PreflightCheck, RestoreReport, SnapshotRef } from '../../events/run-events.js';

export type { SnapshotRef };

/** pending only in a dry run's plan; a run that ends leaves none: what it never reached is not-run. */
export type RevisionStatus = 'pending' | 'applied' | 'failed' | 'reverted' | 'restored' | 'not-run';

export interface RevisionResult {
  name: string;
  status: RevisionStatus;
  durationMs?: number;
}

export type RunStatus = 'ok' | 'up-to-date' | 'dry-run' | 'rolled-back' | 'restored' | 'manual-action-needed';

/** What a changing run did, derived from its step events; returned instead of thrown once the run has started. */
export interface RunResult {
  runId: string;
  command: string;
  outcome: RunStatus;
  exitCode: number;
  message: string;
  hint?: string;
  fromRevision: string | null;
  toRevision: string | null;
  revisions: RevisionResult[];
  snapshot: SnapshotRef | null;
  journalFile: string | null;
  checks: PreflightCheck[];
  /** Health checks failing when the run ended (tolerated by --allow-unhealthy, or failing after a rollback). */
  unhealthy: string[];
  failure?: Record<string, unknown>;
  /** When the run restored a snapshot (or tried to). */
  restore?: RestoreReport;
}
