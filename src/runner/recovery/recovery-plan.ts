import type { ClientBase } from 'pg';
import { readJournalFile, journalFile } from '../../journal/file-journal.js';
import type { JournalRecord } from '../../journal/record.js';
import type { Fingerprint } from '../../integrity/fingerprint.js';
import type { Revision } from '../../migrations/revision.js';
import { prepareStep } from '../../migrations/run-revision.js';
import type { RunSummary } from '../commands/status.js';

export type RecoveryAction = 'down' | 'finish-rollback' | 'restore' | 'nothing';

/** What `belay recover` will do about an interrupted run, and why. */
export interface RecoveryPlan {
  run: RunSummary;
  action: RecoveryAction;
  why: string;
  /** Revisions to revert, newest first. */
  revert: string[];
  /** Where the downs lead: the run's prior revision, or a rollback's target. */
  target: string | null;
  snapshotId: string | null;
  fingerprint: Fingerprint | null;
  /** The step the run was in when it stopped. */
  interruptedAt: string | null;
}

/** The interrupted run's steps: the journal file is written first, so it is the fuller copy. */
async function stepsOf(client: ClientBase, backupsDir: string, runId: string): Promise<JournalRecord[]> {
  try {
    const lines = await readJournalFile(journalFile(backupsDir, runId));
    const steps = lines.filter((line) => line.type === 'step').map(({ type: _type, ...record }) => record as JournalRecord);
    if (steps.length > 0) return steps;
  } catch {
    // no file here (another machine ran it): the database copy
  }
  const { rows } = await client.query<{ seq: number; at: Date; step: string; event: JournalRecord['event']; revision: string | null; subject: string | null; outcome: string | null; detail: Record<string, unknown> | null }>(
    'SELECT seq, at, step, event, revision, subject, outcome, detail FROM belay.steps WHERE run_id = $1 ORDER BY seq',
    [runId],
  );
  return rows.map((row) => {
    const record: JournalRecord = { runId, seq: row.seq, at: row.at.toISOString(), step: row.step, event: row.event };
    if (row.revision) record.revision = row.revision;
    if (row.subject) record.subject = row.subject;
    if (row.outcome) record.outcome = row.outcome;
    if (row.detail) record.detail = row.detail;
    return record;
  });
}

/** The last step that started and never ended. */
function openStep(steps: JournalRecord[]): JournalRecord | undefined {
  const open: JournalRecord[] = [];
  for (const step of steps) {
    if (step.event === 'start') open.push(step);
    else if (step.event === 'end') {
      const index = open.findLastIndex((s) => s.step === step.step && s.revision === step.revision && s.subject === step.subject);
      if (index !== -1) open.splice(index, 1);
    }
  }
  return open[open.length - 1];
}

const label = (step: JournalRecord): string => [step.step, step.revision ?? step.subject].filter(Boolean).join(' ');

export async function planRecovery(client: ClientBase, backupsDir: string, run: RunSummary, revisions: readonly Revision[]): Promise<RecoveryPlan> {
  const steps = await stepsOf(client, backupsDir, run.runId);
  const ended = (name: string): JournalRecord | undefined => steps.find((s) => s.step === name && s.event === 'end' && s.outcome === 'ok');
  const fingerprint = (ended('fingerprint')?.detail?.fingerprint as Fingerprint | undefined) ?? null;
  const snapshotId = (ended('backup')?.detail?.id as string | undefined) ?? null;
  const interrupted = openStep(steps);
  const { rows } = await client.query<{ name: string }>('SELECT name FROM belay.migrations WHERE run_id = $1', [run.runId]);
  const byRun = new Set(rows.map((row) => row.name));
  const base = { run, snapshotId, fingerprint, interruptedAt: interrupted ? label(interrupted) : run.lastStep };

  if (run.command === 'rollback') {
    const { rows: applied } = await client.query<{ name: string }>('SELECT name FROM belay.migrations');
    const appliedNames = new Set(applied.map((row) => row.name));
    const targetIndex = revisions.findIndex((r) => r.name === run.toRevision);
    const revert = revisions.slice(targetIndex + 1).filter((r) => appliedNames.has(r.name)).map((r) => r.name).reverse();
    return { ...base, action: revert.length > 0 ? 'finish-rollback' : 'nothing', why: `the rollback to ${run.toRevision} stopped at "${base.interruptedAt}": finish its downs`, revert, target: run.toRevision };
  }
  if (run.command === 'restore' || interrupted?.step === 'restore') {
    return { ...base, action: 'restore', why: `it stopped while restoring a snapshot: restore it again`, revert: [], target: run.fromRevision };
  }
  if (run.command !== 'migrate-up') {
    return { ...base, action: 'nothing', why: `a ${run.command} run changes no revision; only its record needs settling`, revert: [], target: run.fromRevision };
  }
  const inFlight = interrupted && (interrupted.step === 'apply' || interrupted.step === 'down') && interrupted.revision ? revisions.find((r) => r.name === interrupted.revision) : undefined;
  if (inFlight && !byRun.has(inFlight.name) && interrupted?.step === 'apply' && !(await prepareStep(inFlight, 'up')).transactional) {
    return {
      ...base,
      action: 'restore',
      why: `it stopped inside ${inFlight.name}, which runs outside a transaction: its partial effects cannot be trusted to a down`,
      revert: [],
      target: run.fromRevision,
    };
  }
  if (inFlight && interrupted?.step === 'down' && !(await prepareStep(inFlight, 'down')).transactional) {
    return { ...base, action: 'restore', why: `it stopped inside the down of ${inFlight.name}, which runs outside a transaction`, revert: [], target: run.fromRevision };
  }
  const revert = revisions.filter((r) => byRun.has(r.name)).map((r) => r.name).reverse();
  return {
    ...base,
    action: 'down',
    why:
      revert.length > 0
        ? `it stopped at "${base.interruptedAt}" with ${revert.length} revision(s) of its own applied: revert them to ${run.fromRevision ?? 'the start'} and verify`
        : `it stopped at "${base.interruptedAt}" before any revision committed: verify the data against its fingerprint`,
    revert,
    target: run.fromRevision,
  };
}
