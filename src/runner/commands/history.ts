import { usageError } from '../../errors.js';
import { journalFile, listJournalFiles, readJournalFile, type JournalLine } from '../../journal/file-journal.js';
import type { JournalRecord } from '../../journal/record.js';
import { readRunSteps, readRuns, type RunSummary } from '../../journal/run-store.js';
import { mergeSteps, reconcileRun, stepsOfFile, summaryFromFile } from '../result/run-record.js';
import { openTargetSession, type RunSetup } from '../session/setup.js';

export interface RunHistory {
  run: RunSummary;
  steps: JournalRecord[];
  /** Where the steps were read from: both when each copy held some the other did not have. */
  source: 'database' | 'journal file' | 'database and journal file';
  journalFile: string;
}

/**
 * Past runs, newest first: the database's record merged with the journal
 * files beside the backups (src/runner/result/run-record.ts). A backups
 * folder shared by several databases holds their journal files side by
 * side: only this database's runs unless `all`.
 */
export async function runHistoryList(setup: RunSetup, limit = 50, all = false): Promise<RunSummary[]> {
  const files = new Map<string, JournalLine[]>();
  for (const file of await listJournalFiles(setup.config.backupsDir)) {
    const lines = await readJournalFile(file).catch(() => []);
    const summary = summaryFromFile(lines);
    if (summary && (all || summary.database === setup.target.database)) files.set(summary.runId, lines);
  }
  const byId = new Map<string, RunSummary>();
  const session = await openTargetSession(setup, 'belay history');
  try {
    for (const row of await readRuns(session.client, limit)) {
      const run = await reconcileRun(session.client, row, files.get(row.runId));
      if (run) byId.set(run.runId, run);
    }
    for (const [runId, lines] of files) {
      if (byId.has(runId)) continue;
      const run = await reconcileRun(session.client, undefined, lines);
      if (run) byId.set(runId, run);
    }
  } finally {
    await session.close();
  }
  return [...byId.values()].sort((a, b) => (a.startedAt < b.startedAt ? 1 : -1)).slice(0, limit);
}

/** Every step of one run (id or unique prefix): the database's copy and the journal file's, merged. */
export async function runHistoryOf(setup: RunSetup, query: string): Promise<RunHistory> {
  const runs = await runHistoryList(setup, 10_000, true);
  const matches = runs.filter((run) => run.runId === query || run.runId.startsWith(query));
  if (matches.length !== 1) {
    throw usageError(matches.length === 0 ? `no run ${query}` : `run ${query} is ambiguous: ${matches.map((m) => m.runId).join(', ')}`, {
      hint: 'List runs with `belay history`.',
    });
  }
  const run = matches[0]!;
  const file = journalFile(setup.config.backupsDir, run.runId);
  const session = await openTargetSession(setup, 'belay history');
  let fromDatabase: JournalRecord[];
  try {
    fromDatabase = await readRunSteps(session.client, run.runId);
  } finally {
    await session.close();
  }
  // neither copy may have the steps
  const fromFile = stepsOfFile(await readJournalFile(file).catch(() => []));
  const steps = mergeSteps(fromDatabase, fromFile);
  const source = steps.length === fromDatabase.length ? 'database' : steps.length === fromFile.length ? 'journal file' : 'database and journal file';
  return { run, steps, source, journalFile: file };
}
