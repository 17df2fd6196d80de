import type { ClientBase } from 'pg';
import { DatabaseJournal } from './db-journal.js';
import { journalFile, readJournalFile } from './file-journal.js';
import type { JournalRecord, RunHeader, RunOutcome } from './record.js';
import { findUnfinishedRuns, markInSnapshot, readRun } from './run-store.js';

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

/** A run this database has no record of (it began after the snapshot a restore put back): its journal, from its file. */
export async function recordRunFromFile(client: ClientBase, backupsDir: string, runId: string): Promise<void> {
  if (!(await readRun(client, runId))) await writeRunFromFile(client, backupsDir, runId, false);
}
