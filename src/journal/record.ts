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
