import type { PreflightCheck } from '../steps/preflight.js';

export type RevisionStatus = 'applied' | 'failed' | 'pending' | 'reverted' | 'not-run';

export interface RevisionResult {
  name: string;
  status: RevisionStatus;
  durationMs?: number;
}

export interface SnapshotRef {
  id: string;
  path: string;
  sha256: string;
  sizeBytes: number;
}

/** What a changing run did, step by step; returned instead of thrown once the run has started. */
export interface RunResult {
  runId: string;
  command: string;
  /** ok | up-to-date | dry-run | rolled-back | restored | manual-action-needed */
  outcome: string;
  exitCode: number;
  message: string;
  hint?: string;
  fromRevision: string | null;
  toRevision: string | null;
  revisions: RevisionResult[];
  snapshot: SnapshotRef | null;
  journalFile: string | null;
  checks: PreflightCheck[];
  failure?: Record<string, unknown>;
  /** When the run restored its snapshot (or tried to). */
  restore?: { ok: boolean; strategy: string; quarantine: string | null; quarantineSnapshot: string | null; message: string; manualSteps: string[] };
}
