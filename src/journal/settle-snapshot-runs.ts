import type { ClientBase } from 'pg';
import { DatabaseJournal } from './db-journal.js';
import { journalFile, readJournalFile } from './file-journal.js';
import type { JournalRecord, RunHeader, RunOutcome } from './record.js';
import { findUnfinishedRuns, markInSnapshot } from './run-store.js';

/**
 * A snapshot is dumped while the run that takes it is going on, so a copy
 * restored from it holds that run as "running", and belay would take it for
 * an interrupted run. Write such runs' whole journal into the copy from their
 * journal files; a run whose file holds no outcome is marked "in-snapshot".
 * The run doing the restore (`currentRunId`) writes its own journal itself.
 */
export async function settleRunsCaughtBySnapshot(client: ClientBase, backupsDir: string, currentRunId: string, snapshotId: string): Promise<void> {
  for (const { runId: id } of await findUnfinishedRuns(client, currentRunId)) {
    const lines = await readJournalFile(journalFile(backupsDir, id)).catch(() => []);
    const header = lines.find((line) => line.type === 'run') as ({ type: 'run' } & RunHeader) | undefined;
    const outcome = lines.find((line) => line.type === 'outcome') as ({ type: 'outcome' } & RunOutcome) | undefined;
    if (header && outcome) {
      const journal = new DatabaseJournal();
      journal.setHeader(header);
      for (const line of lines) if (line.type === 'step') await journal.record(line as JournalRecord);
      await journal.finish(outcome);
      await journal.attach(client);
    } else {
      await markInSnapshot(client, id, `running when snapshot ${snapshotId} was taken; its outcome is not in this copy (no journal file for it here)`);
    }
  }
}
