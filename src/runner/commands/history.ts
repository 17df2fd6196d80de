import { withDatabase } from '../../db/connection.js';
import { isConnectFailure, isMissingDatabase, openSession, type Session } from '../../db/session.js';
import { BelayError, errorMessage, usageError } from '../../errors.js';
import { journalDir, journalFile, listJournalFiles, readJournalFile, type JournalLine } from '../../journal/file-journal.js';
import { readProblem } from '../../unreadable.js';
import type { JournalRecord } from '../../journal/record.js';
import { readRunSteps, readRuns, type RunSummary } from '../../journal/run-store.js';
import { findLockHolder } from '../../db/advisory-lock.js';
import { mergeSteps, nameUnended, reconcileRun, stepsOfFile, summaryFromFile } from '../result/run-record.js';
import { runSuffix, runSuffixOf } from '../session/run-lock.js';
import { openTargetSession, sessionOptions, type RunSetup } from '../session/setup.js';
import { halfSwap, swapStopped, type HalfSwap } from '../steps/restore-step.js';

export interface RunHistory {
  run: RunSummary;
  steps: JournalRecord[];
  /** Where the steps were read from: both when each copy held some the other did not have. */
  source: 'database' | 'journal file' | 'database and journal file';
  journalFile: string;
  /** What to run: where a swap restore killed between its renames left the database missing, `belay recover`. */
  next?: string;
}

/**
 * The database could not be reached: the error names it and carries what
 * the journal files hold (`details.fromJournalFiles`), so that a history is
 * shown all the same, with the exit code of the connection failure.
 */
function unreachable(error: BelayError, backupsDir: string, what: string, local: RunSummary[] | RunHistory): BelayError {
  return usageError(`${error.message}; ${what} from the journal files in ${journalDir(backupsDir)} only`, {
    hint: `${error.hint ?? ''} The database's own record (runs whose journal file is gone, steps a restore kept there) is shown once it can be reached.`.trim(),
    details: { fromJournalFiles: local },
    cause: error,
  });
}

async function readJournalLines(file: string): Promise<JournalLine[]> {
  try {
    return await readJournalFile(file);
  } catch (error) {
    const problem = readProblem(error, `the journal file ${file}`);
    throw usageError(`cannot read the journal file ${file}: ${problem ? `${problem.code}: ${problem.reason}` : errorMessage(error)}`, {
      hint: problem?.hint ?? 'Make it a readable file for the user running belay.',
      cause: error,
    });
  }
}

/** The journal files beside the backups, each run's lines by its id (this database's runs only, unless `all`). */
async function journalFilesOf(setup: RunSetup, all: boolean): Promise<Map<string, JournalLine[]>> {
  const files = new Map<string, JournalLine[]>();
  for (const file of await listJournalFiles(setup.config.backupsDir)) {
    const lines = await readJournalLines(file);
    const summary = summaryFromFile(lines);
    if (summary && (all || summary.database === setup.target.database)) files.set(summary.runId, lines);
  }
  return files;
}

/**
 * A session on the target; where a swap restore killed between its renames
 * left it missing, on the verified copy `belay recover` renames into its
 * place, as status reads it. Where the databases are not as the journal says,
 * the connection error stands (recover says what to run then).
 */
async function openHistorySession(setup: RunSetup): Promise<{ session: Session; swap?: HalfSwap }> {
  try {
    return { session: await openTargetSession(setup, 'belay history') };
  } catch (error) {
    const swap = isMissingDatabase(error) ? await halfSwap(setup).catch(() => undefined) : undefined;
    if (!swap) throw error;
    return { session: await openSession(withDatabase(setup.target, swap.copy), sessionOptions(setup, 'belay history')), swap };
  }
}

/** Runs newest first, and how many there are: the newest `limit` of them (every one when it is undefined). */
export interface RunList {
  runs: RunSummary[];
  total: number;
}

const newestFirst = (runs: Iterable<RunSummary>, limit: number | undefined): RunList => {
  const sorted = [...runs].sort((a, b) => (a.startedAt < b.startedAt ? 1 : -1));
  return { runs: sorted.slice(0, limit), total: sorted.length };
};

/**
 * Past runs, newest first: the database's record merged with the journal
 * files beside the backups (src/runner/result/run-record.ts). A backups
 * folder shared by several databases holds their journal files side by
 * side: only this database's runs unless `all`. When the database cannot be
 * reached, the connection error (exit 2) carries the journal files' runs.
 * Only the newest `limit` runs are made whole from both copies.
 */
export async function runHistoryList(setup: RunSetup, limit?: number, all = false): Promise<RunList> {
  const files = await journalFilesOf(setup, all);
  let session;
  try {
    ({ session } = await openHistorySession(setup));
  } catch (error) {
    const local = newestFirst([...files.values()].flatMap((lines) => summaryFromFile(lines) ?? []), limit);
    const shown = local.runs.length < local.total ? `the newest ${local.runs.length} of ${local.total} runs shown are` : 'the runs shown are';
    if (isConnectFailure(error)) throw unreachable(error, setup.config.backupsDir, shown, local.runs);
    throw error;
  }
  try {
    const holder = await findLockHolder(session.client);
    const holderSuffix = holder && runSuffixOf(holder.applicationName);
    const live = (runId: string): boolean => runSuffix(runId) === holderSuffix;
    const rows = new Map((await readRuns(session.client)).map((row) => [row.runId, row]));
    const fileOnly = [...files].filter(([runId]) => !rows.has(runId)).flatMap(([, lines]) => summaryFromFile(lines) ?? []);
    const list = newestFirst([...rows.values(), ...fileOnly], limit);
    const runs: RunSummary[] = [];
    for (const listed of list.runs) {
      const run = await reconcileRun(session.client, rows.get(listed.runId), files.get(listed.runId));
      if (run) runs.push(nameUnended(run, live));
    }
    return { runs, total: list.total };
  } finally {
    await session.close();
  }
}

/** Every step of one run (id, or a unique prefix or suffix of it): the database's copy and the journal file's, merged. */
export async function runHistoryOf(setup: RunSetup, query: string): Promise<RunHistory> {
  let runs: RunSummary[];
  let lost: BelayError | undefined;
  try {
    ({ runs } = await runHistoryList(setup, undefined, true));
  } catch (error) {
    if (!(error instanceof BelayError) || !Array.isArray(error.details.fromJournalFiles)) throw error;
    // the database is out of reach: the journal file alone, and the connection error after it
    runs = error.details.fromJournalFiles as RunSummary[];
    lost = error.cause as BelayError;
  }
  if (query.trim() === '') throw usageError('no run was named: the argument is empty', { hint: 'Name a run by its id or a unique prefix or suffix of it (`belay history` lists them).' });
  // a suffix too: a run's sessions (the lock holder belay names) carry the last 12 hex digits of its id
  const matches = runs.filter((run) => run.runId.startsWith(query) || run.runId.endsWith(query));
  if (matches.length !== 1) {
    const message = matches.length === 0 ? `no run ${query}` : `run ${query} is ambiguous: ${matches.map((m) => m.runId).join(', ')}`;
    throw usageError(lost ? `${message} in the journal files (and ${lost.message})` : message, { hint: lost?.hint ?? 'List runs with `belay history`.' });
  }
  const run = matches[0]!;
  const file = journalFile(setup.config.backupsDir, run.runId);
  // neither copy may have the steps
  const fromFile = stepsOfFile(await readJournalFile(file).catch(() => []));
  if (lost) throw unreachable(lost, setup.config.backupsDir, 'its steps are', { run, steps: fromFile, source: 'journal file', journalFile: file });
  const { session, swap } = await openHistorySession(setup);
  let fromDatabase: JournalRecord[];
  try {
    fromDatabase = await readRunSteps(session.client, run.runId);
  } finally {
    await session.close();
  }
  const steps = mergeSteps(fromDatabase, fromFile);
  const source = steps.length === fromDatabase.length ? 'database' : steps.length === fromFile.length ? 'journal file' : 'database and journal file';
  if (!swap) return { run, steps, source, journalFile: file };
  const target = setup.target.database;
  return {
    run,
    steps,
    source,
    journalFile: file,
    next: `${target} does not exist: ${swapStopped(swap)} between the renames of its swap restore (${target} to ${swap.quarantine}, its verified copy ${swap.copy} to ${target}); \`belay recover\` renames ${swap.copy} to ${target} and settles the run (this history is read from the journal files and ${swap.copy})`,
  };
}
