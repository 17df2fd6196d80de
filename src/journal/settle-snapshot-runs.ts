import type { ClientBase } from 'pg';
import { DatabaseJournal } from './db-journal.js';
import { belaySchemaExists } from '../db/belay-schema.js';
import { FileJournal, journalFile, journalsOf, readJournalFile, settledOutcome, unfinishedJournals, type JournalLine } from './file-journal.js';
import type { JournalRecord, RunHeader, RunOutcome } from './record.js';
import { findUnfinishedRuns, markInSnapshot, readRun } from './run-store.js';
import { openRestore, stepsOfFile } from '../runner/result/run-record.js';

/**
 * A snapshot is dumped while the run that takes it is going on, so a copy
 * restored from it holds that run as "running", and belay would take it for
 * an interrupted run. Write such runs' whole journal into the copy from their
 * journal files; a run whose file holds no outcome is marked "in-snapshot".
 * The run doing the restore (`currentRunId`) writes its own journal itself.
 */
export async function settleRunsCaughtBySnapshot(client: ClientBase, backupsDir: string, currentRunId: string, snapshotId: string): Promise<void> {
  for (const { runId: id } of await findUnfinishedRuns(client, currentRunId)) {
    if (!(await writeRunFromFile(client, backupsDir, id, true))) {
      await markInSnapshot(client, id, `running when snapshot ${snapshotId} was taken; its outcome is not in this copy (no journal file for it here)`);
    }
  }
}

/** A run whose record said running though its journal file holds its outcome, and the copies of the database its restore named. */
export interface EndedRun {
  runId: string;
  outcome: RunOutcome;
  restoreCopies: string[];
}

/**
 * Runs marked running whose journal file holds the outcome they printed, one
 * that leaves nothing to do (`settledOutcome`): the server stopped before it
 * reached the database. Their record is written in from the file, as the run
 * would have written it; nothing is done again. Call under the lock: no such
 * run is alive. But `except` (the caller's own).
 */
export async function recordEndedRuns(client: ClientBase, backupsDir: string, except: string): Promise<EndedRun[]> {
  const ended: EndedRun[] = [];
  for (const { runId } of await findUnfinishedRuns(client, except)) {
    const lines = await readJournalFile(journalFile(backupsDir, runId)).catch((): JournalLine[] => []);
    const outcome = settledOutcome(lines);
    if (!outcome || !(await writeRunFromFile(client, backupsDir, runId, true))) continue;
    const restoreCopies = stepsOfFile(lines).flatMap((step) => (typeof step.detail?.restoreCopy === 'string' ? [step.detail.restoreCopy] : []));
    ended.push({ runId, outcome, restoreCopies });
  }
  return ended;
}

/**
 * Write a run's whole journal from its file into this database. With
 * `finishedOnly`, only a run whose file holds its outcome. Answers whether
 * it was written.
 */
async function writeRunFromFile(client: ClientBase, backupsDir: string, runId: string, finishedOnly: boolean): Promise<boolean> {
  const lines = await readJournalFile(journalFile(backupsDir, runId)).catch(() => []);
  const header = lines.find((line) => line.type === 'run') as ({ type: 'run' } & RunHeader) | undefined;
  const outcome = lines.find((line) => line.type === 'outcome') as ({ type: 'outcome' } & RunOutcome) | undefined;
  if (!header || (finishedOnly && !outcome)) return false;
  const journal = new DatabaseJournal();
  journal.setHeader(header);
  for (const line of lines) if (line.type === 'step') await journal.record(line as JournalRecord);
  if (outcome) await journal.finish(outcome);
  await journal.attach(client);
  return true;
}

/** A run that ended, its record written into this database from its journal file (one a swap it began took the place of lacks it). */
export async function recordEndedRun(client: ClientBase, backupsDir: string, runId: string): Promise<void> {
  await writeRunFromFile(client, backupsDir, runId, true);
}

/**
 * Runs of this database whose journal file has no outcome and which the
 * database has no record of: killed before they wrote to it (a run writes
 * its record there before it changes anything), or begun after the snapshot
 * a restore put back. Oldest first; but `except` (the caller's own).
 */
export async function findStrayRuns(
  client: ClientBase,
  backupsDir: string,
  database: string,
  except?: string,
  unfinished?: Array<{ header: RunHeader; lines: JournalLine[] }>,
): Promise<Array<{ header: RunHeader; lines: JournalLine[] }>> {
  const recorded = await belaySchemaExists(client);
  const found: Array<{ header: RunHeader; lines: JournalLine[] }> = [];
  for (const journal of unfinished ?? (await unfinishedJournals(backupsDir, database))) {
    if (journal.header.runId === except || (recorded && (await readRun(client, journal.header.runId)))) continue;
    found.push(journal);
  }
  return found;
}

/**
 * The stray runs' journals written in (still "running"), so that they can
 * be settled and `history` tells them as the database does. Call under the
 * lock, where belay's schema exists: no such run is alive.
 */
export async function recordStrayRuns(client: ClientBase, backupsDir: string, database: string, except: string): Promise<string[]> {
  const strays = await findStrayRuns(client, backupsDir, database, except);
  for (const { header } of strays) await writeRunFromFile(client, backupsDir, header.runId, false);
  return strays.map(({ header }) => header.runId);
}

/** A note, durably appended to the journal file of a run that ended without writing one, on its restore of `snapshot`. */
export async function noteRestore(backupsDir: string, runId: string, steps: readonly JournalRecord[], snapshot: string, detail: Record<string, unknown>): Promise<void> {
  const file = await FileJournal.open(backupsDir, runId);
  try {
    const note: JournalRecord = { runId, seq: Math.max(0, ...steps.map((step) => step.seq)) + 1, at: new Date().toISOString(), step: 'restore', event: 'note', subject: snapshot, detail };
    await file.append({ type: 'step', ...note });
    if (file.failure) throw file.failure;
  } finally {
    await file.close();
  }
}

/**
 * Stray runs killed in a restore that had put the snapshot in place: the
 * database lost their record with what it held (its copy of the journal is
 * the snapshot's). Each gets a note in its journal file that the snapshot
 * replaced the database, so that this stays known once it is recorded; the
 * runs the snapshot caught mid-way are settled from their files, as the
 * restore would have done; then its record is written in, still "running",
 * for recover to settle. Call under the lock, where belay's schema exists.
 */
export async function recordReplacingRestores(client: ClientBase, backupsDir: string, database: string, except: string, noticedBy: string): Promise<string[]> {
  if (!(await belaySchemaExists(client))) return [];
  // only the newest run that began a restore can have put what the database holds in place: an older one's open restore
  // is one a later run went past (a recover restored again), its record lost with the database that run replaced
  const newest = (await journalsOf(backupsDir, database)).findLast(({ lines }) => stepsOfFile(lines).some((step) => step.step === 'restore' && step.event === 'start'));
  const recorded: string[] = [];
  for (const { header, lines } of await findStrayRuns(client, backupsDir, database, except)) {
    if (header.runId !== newest?.header.runId) continue;
    const steps = stepsOfFile(lines);
    const restore = openRestore(steps, []);
    if (!restore) continue;
    if (!steps.some((step) => typeof step.detail?.replaced === 'string')) {
      await noteRestore(backupsDir, header.runId, steps, restore.snapshot, {
        message: `${database} holds no record of this run: snapshot ${restore.snapshot} had replaced it (noticed by run ${noticedBy})`,
        replaced: database,
      });
    }
    await settleRunsCaughtBySnapshot(client, backupsDir, header.runId, restore.snapshot);
    await writeRunFromFile(client, backupsDir, header.runId, false);
    recorded.push(header.runId);
  }
  return recorded;
}
