import { EXIT } from '../errors.js';

/** One line of the journal: a step starting or ending, or the run itself. */
export interface JournalRecord {
  runId: string;
  seq: number;
  at: string;
  step: string;
  event: 'start' | 'end' | 'note';
  revision?: string;
  subject?: string;
  outcome?: string;
  durationMs?: number;
  detail?: Record<string, unknown>;
}

/** What a run is, as recorded in belay.runs and the first journal line. */
export interface RunHeader {
  runId: string;
  command: string;
  startedAt: string;
  runBy: string;
  database: string;
  fromRevision: string | null;
  toRevision: string | null;
}

export interface RunOutcome {
  status: string;
  exitCode: number;
  finishedAt: string;
  snapshotId: string | null;
  toRevision: string | null;
  summary: Record<string, unknown>;
}

/** The outcome words of a run refused after its journal began (exit 2, 3, 4): it left the database where it found it. */
export const REFUSALS: readonly string[] = ['usage-error', 'locked', 'refused'];

/** A refusal's word for its exit code, the one its --json outcome uses. */
export const refusalStatus = (exitCode: number): string => (exitCode === EXIT.usage ? 'usage-error' : exitCode === EXIT.locked ? 'locked' : 'refused');
