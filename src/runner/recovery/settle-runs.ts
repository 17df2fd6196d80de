import { belaySchemaExists } from '../../db/belay-schema.js';
import { journalFile, readJournalFile, type JournalLine } from '../../journal/file-journal.js';
import type { RunOutcome } from '../../journal/record.js';
import { insertSteps, markRunSettled, readRun, readRunSteps } from '../../journal/run-store.js';
import { recordStrayRuns } from '../../journal/settle-snapshot-runs.js';
import { lastStarted, leftBySteps, mergeSteps, snapshotsOfRun, stepsOfFile } from '../result/run-record.js';
import type { RunSession } from '../session/run-session.js';

/** Outcomes after which the database is verified: only then are interrupted runs settled. */
export const VERIFIED_OUTCOMES: ReadonlySet<string> = new Set(['ok', 'rolled-back', 'restored']);

/**
 * Mark interrupted runs settled by this one, once it has verified the
 * database (`recover`, or a `restore` of a verified snapshot). The runs only
 * journal files know of (killed before they wrote to the database, or begun
 * after the snapshot a restore put back) are recorded and settled too, so
 * that `history` calls none of them unfinished. Each run's record in the
 * database is made whole from its journal file first (the steps a kill or a
 * stopped server left unwritten, the outcome it printed). `leftAt` says where
 * a run left the database when the caller read it (the newest run's, before
 * anything changed it); for the others, their journaled steps say.
 */
export async function settleRuns(session: RunSession, runIds: string[], outcome: string, leftAt: ReadonlyMap<string, string | null> = new Map()): Promise<void> {
  const { setup } = session;
  // no connection after a restore: the runs stay unsettled for the next recover, which finds the database verified
  if (!session.connected) return;
  const client = session.control.client;
  if (!(await belaySchemaExists(client))) return;
  const strays = await recordStrayRuns(client, setup.config.backupsDir, setup.target.database, session.runId);
  for (const runId of new Set([...runIds, ...strays])) {
    const run = await readRun(client, runId);
    if (!run) continue;
    const lines: JournalLine[] = await readJournalFile(journalFile(setup.config.backupsDir, runId)).catch(() => []);
    const fileSteps = stepsOfFile(lines);
    if (fileSteps.length > 0) await insertSteps(client, fileSteps, lastStarted(fileSteps) ?? undefined);
    const recorded = lines.find((line) => line.type === 'outcome') as (RunOutcome & { type: 'outcome' }) | undefined;
    const steps = mergeSteps(fileSteps, await readRunSteps(client, runId));
    const left = leftAt.has(runId) ? leftAt.get(runId)! : leftBySteps(run.fromRevision, steps);
    await markRunSettled(client, runId, session.runId, outcome, recorded, left, snapshotsOfRun(steps).taken, steps.at(-1)?.at ?? run.startedAt);
  }
}
