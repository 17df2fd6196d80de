import type { ClientBase } from 'pg';
import { stepLabel, type RunEvent } from '../../events/run-events.js';
import { journalFile, readJournalFile, type JournalLine } from '../../journal/file-journal.js';
import { REFUSALS, type JournalRecord, type RunOutcome } from '../../journal/record.js';
import { readRunSteps, type RunSummary } from '../../journal/run-store.js';
import { noFacts, reduceRun } from './ledger.js';

/**
 * A run's record, made whole from its two copies: the journal file (written
 * first, fdatasynced, beside the backups) and belay.runs / belay.steps (a
 * copy that a stopped server or a kill can leave behind the file). Each
 * record has one seq in both, so the copies merge without conflict.
 */

export function stepsOfFile(lines: JournalLine[]): JournalRecord[] {
  return lines.filter((line) => line.type === 'step').map(({ type: _type, ...record }) => record as JournalRecord);
}

/** Both copies' records, one per seq, in order. */
export function mergeSteps(first: JournalRecord[], second: JournalRecord[]): JournalRecord[] {
  const bySeq = new Map<number, JournalRecord>();
  for (const record of [...first, ...second]) if (!bySeq.has(record.seq)) bySeq.set(record.seq, record);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** A run's steps: the journal file is written first, so it is the fuller copy; merged with the database's (all there is when another machine ran it). */
export async function runSteps(client: ClientBase, backupsDir: string, runId: string): Promise<JournalRecord[]> {
  const fromFile = stepsOfFile(await readJournalFile(journalFile(backupsDir, runId)).catch(() => []));
  return mergeSteps(fromFile, await readRunSteps(client, runId));
}

/**
 * The snapshots a run's steps name: the one it took (its backup ended ok)
 * and the one it began putting back (`belay restore ID`, --restore-from, or
 * its own backup when the safety net restored it). `recover` restores the
 * first of them for the run; prune keeps both while the run is unsettled.
 */
export function snapshotsOfRun(steps: readonly JournalRecord[]): { taken: string | null; restoring: string | null } {
  const taken = steps.find((s) => s.step === 'backup' && s.event === 'end' && s.outcome === 'ok')?.detail?.id;
  const restoring = steps.find((s) => s.step === 'restore' && s.event === 'start' && s.subject)?.subject;
  return { taken: typeof taken === 'string' ? taken : null, restoring: restoring ?? null };
}

/**
 * The copies a run's restores kept of what they replaced: an in-place
 * restore's snapshot, a swap's database (named before its renames, in the
 * `connectionsOff` note, for a swap stopped before it could say it was done).
 */
export function keptByRun(steps: readonly JournalRecord[]): { snapshots: string[]; databases: string[] } {
  const named = (key: string): string[] => steps.flatMap((s) => (typeof s.detail?.[key] === 'string' ? [s.detail[key]] : []));
  const aside = steps.flatMap((s) => {
    const off = s.detail?.connectionsOff;
    return Array.isArray(off) && typeof off[1] === 'string' ? [off[1]] : [];
  });
  return { snapshots: [...new Set(named('quarantineSnapshot'))], databases: [...new Set([...named('quarantine'), ...aside])] };
}

/**
 * A restore the run began and never ended, and whether it had already put the
 * snapshot in place of the database: it journaled so (pg_restore committed,
 * the swap's renames done), or the database's own copy of the run
 * (`inDatabase`) lacks the restore's start, which a restore put back holds
 * only when it was replaced from a snapshot taken before it.
 */
export function openRestore(steps: readonly JournalRecord[], inDatabase: readonly JournalRecord[]): { snapshot: string; replaced: boolean } | undefined {
  const start = steps.findLast((s) => s.step === 'restore' && s.event === 'start' && s.subject);
  if (!start?.subject || steps.some((s) => s.step === 'restore' && s.event === 'end' && s.seq > start.seq)) return undefined;
  const journaled = steps.some((s) => s.seq > start.seq && s.step === 'restore' && typeof s.detail?.replaced === 'string');
  return { snapshot: start.subject, replaced: journaled || !inDatabase.some((s) => s.seq === start.seq) };
}

/**
 * The snapshot a run's newest restore put back and verified (its step ended
 * ok): a run stopped after it (its afterRestore hook, its health checks) left
 * the database as that restore made it, to be checked, never restored again.
 */
export function restoreDone(steps: readonly JournalRecord[]): { snapshot: string; revision: string | null } | undefined {
  const start = steps.findLast((s) => s.step === 'restore' && s.event === 'start' && s.subject);
  const end = start && steps.find((s) => s.step === 'restore' && s.event === 'end' && s.seq > start.seq);
  if (!start?.subject || end?.outcome !== 'ok') return undefined;
  return { snapshot: start.subject, revision: typeof end.detail?.revision === 'string' ? end.detail.revision : null };
}

/** The label of the last step that started ("apply 0004_x"), as belay.runs.last_step names it. */
export function lastStarted(steps: JournalRecord[]): string | null {
  const last = steps.findLast((step) => step.event === 'start');
  return last ? stepLabel(last) : null;
}

/**
 * Where a run's journaled steps left the database: where it started, moved
 * by each revision it committed or reverted and each snapshot it restored.
 * The ledger's reducer, so that it says what a finished run's result says.
 */
export function leftBySteps(fromRevision: string | null, steps: JournalRecord[]): string | null {
  let facts = noFacts(fromRevision);
  for (const record of steps) {
    if (record.event !== 'end') continue;
    const { step, revision, subject, outcome, durationMs, detail } = record;
    facts = reduceRun(facts, { type: 'step-end', step, revision, subject, outcome, durationMs: durationMs ?? 0, detail } as unknown as RunEvent);
  }
  return facts.toRevision;
}

const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);

/** A run as its journal file tells it: once it ended, its outcome; until then, where its steps left the database. */
export function summaryFromFile(lines: JournalLine[]): RunSummary | undefined {
  const head = lines.find((line) => line.type === 'run') as Record<string, unknown> | undefined;
  if (!head) return undefined;
  const end = lines.find((line) => line.type === 'outcome') as (Partial<RunOutcome> & Record<string, unknown>) | undefined;
  const steps = stepsOfFile(lines);
  const from = text(head.fromRevision);
  return {
    runId: String(head.runId),
    command: String(head.command),
    status: text(end?.status) ?? 'unfinished',
    startedAt: String(head.startedAt),
    finishedAt: text(end?.finishedAt),
    fromRevision: from,
    // where it left the database (null: the start); a refused run left it where it was
    toRevision: !end ? leftBySteps(from, steps) : REFUSALS.includes(String(end.status)) ? from : text(end.toRevision),
    exitCode: typeof end?.exitCode === 'number' ? end.exitCode : null,
    // until it ended, the snapshot its backup step took
    snapshotId: end ? text(end.snapshotId) : snapshotsOfRun(steps).taken,
    lastStep: lastStarted(steps),
    runBy: String(head.runBy),
    database: text(head.database),
  };
}

/**
 * The word for a run with no outcome: running while it holds the lock (`live`),
 * else interrupted, the word `belay recover` records when it settles it.
 */
export function nameUnended(run: RunSummary, live: (runId: string) => boolean): RunSummary {
  if (run.status !== 'running' && run.status !== 'unfinished') return run;
  return { ...run, status: live(run.runId) ? 'running' : 'interrupted' };
}

/**
 * One run from both copies. The database's row wins for what only it
 * knows (that a recover settled it); the file for what the database copy
 * could not take down: the outcome the run printed when its server had
 * stopped, and the steps a kill left unwritten. A run with no outcome in
 * either shows where its steps left the database, never its target.
 */
export async function reconcileRun(client: ClientBase, row: RunSummary | undefined, lines: JournalLine[] | undefined): Promise<RunSummary | undefined> {
  const fromFile = lines ? summaryFromFile(lines) : undefined;
  if (!row) return fromFile;
  const unended = row.status === 'running' || row.status === 'in-snapshot';
  if (!fromFile) {
    if (!unended) return row;
    const steps = await readRunSteps(client, row.runId);
    return { ...row, toRevision: leftBySteps(row.fromRevision, steps), snapshotId: row.snapshotId ?? snapshotsOfRun(steps).taken };
  }
  const merged: RunSummary = { ...row, lastStep: fromFile.lastStep ?? row.lastStep };
  if (row.exitCode === null && fromFile.exitCode !== null) {
    return { ...merged, status: fromFile.status, exitCode: fromFile.exitCode, finishedAt: fromFile.finishedAt, snapshotId: fromFile.snapshotId ?? row.snapshotId, toRevision: fromFile.toRevision };
  }
  if (unended) {
    const steps = mergeSteps(stepsOfFile(lines!), await readRunSteps(client, row.runId));
    return { ...merged, toRevision: leftBySteps(row.fromRevision, steps), snapshotId: row.snapshotId ?? snapshotsOfRun(steps).taken };
  }
  return merged;
}
