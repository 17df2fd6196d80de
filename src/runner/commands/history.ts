import { isConnectFailure } from '../../db/session.js';
import { BelayError, errorMessage, usageError } from '../../errors.js';
import { journalDir, journalFile, listJournalFiles, readJournalFile, type JournalLine } from '../../journal/file-journal.js';
import { readProblem } from '../../unreadable.js';
import type { JournalRecord } from '../../journal/record.js';
import { readRun, readRunSteps, readRuns, type RunSummary } from '../../journal/run-store.js';
import { openTargetSession, type RunSetup } from '../session/setup.js';

export interface RunHistory {
  run: RunSummary;
  steps: JournalRecord[];
  /** Where the steps were read from. */
  source: 'database' | 'journal file';
  journalFile: string;
}

/** A run as its journal file tells it, for runs the database does not hold (refused, or lost with a damaged copy). */
function summaryFromFile(lines: JournalLine[]): RunSummary | undefined {
  const head = lines.find((line) => line.type === 'run') as Record<string, unknown> | undefined;
  if (!head) return undefined;
  const end = lines.find((line) => line.type === 'outcome') as Record<string, unknown> | undefined;
  const steps = lines.filter((line): line is { type: 'step' } & JournalRecord => line.type === 'step');
  const last = [...steps].reverse().find((step) => step.event === 'start');
  const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
  return {
    runId: String(head.runId),
    command: String(head.command),
    status: text(end?.status) ?? 'unfinished',
    startedAt: String(head.startedAt),
    finishedAt: text(end?.finishedAt),
    fromRevision: text(head.fromRevision),
    // once it ended, where it left the database (null: the start); a refused run left it where it was
    toRevision: !end ? text(head.toRevision) : end.status === 'refused' ? text(head.fromRevision) : text(end.toRevision),
    exitCode: typeof end?.exitCode === 'number' ? end.exitCode : null,
    snapshotId: text(end?.snapshotId),
    lastStep: last ? (last.revision ? `${last.step} ${last.revision}` : last.step) : null,
    runBy: String(head.runBy),
    database: text(head.database),
  };
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

/** The runs the journal files beside the backups tell of (this database's only, unless `all`). */
async function runsFromFiles(setup: RunSetup, all: boolean): Promise<Map<string, RunSummary>> {
  const byId = new Map<string, RunSummary>();
  for (const file of await listJournalFiles(setup.config.backupsDir)) {
    const summary = summaryFromFile(await readJournalLines(file));
    if (summary && (all || summary.database === setup.target.database)) byId.set(summary.runId, summary);
  }
  return byId;
}

const newestFirst = (runs: Iterable<RunSummary>, limit: number): RunSummary[] => [...runs].sort((a, b) => (a.startedAt < b.startedAt ? 1 : -1)).slice(0, limit);

/**
 * Past runs, newest first: the database's record merged with the journal
 * files beside the backups. A backups folder shared by several databases
 * holds their journal files side by side: only this database's runs unless
 * `all`. When the database cannot be reached, the connection error (exit 2)
 * carries the journal files' runs.
 */
export async function runHistoryList(setup: RunSetup, limit = 50, all = false): Promise<RunSummary[]> {
  const byId = await runsFromFiles(setup, all);
  let session;
  try {
    session = await openTargetSession(setup, 'belay history');
  } catch (error) {
    if (isConnectFailure(error)) throw unreachable(error, setup.config.backupsDir, 'the runs shown are', newestFirst(byId.values(), limit));
    throw error;
  }
  try {
    for (const run of await readRuns(session.client, limit)) byId.set(run.runId, run);
  } finally {
    await session.close();
  }
  return newestFirst(byId.values(), limit);
}

/** Every step of one run (id or unique prefix), from the database when it has them, else from the journal file. */
export async function runHistoryOf(setup: RunSetup, query: string): Promise<RunHistory> {
  let runs: RunSummary[];
  let lost: BelayError | undefined;
  try {
    runs = await runHistoryList(setup, 10_000, true);
  } catch (error) {
    if (!(error instanceof BelayError) || !Array.isArray(error.details.fromJournalFiles)) throw error;
    // the database is out of reach: the journal file alone, and the connection error after it
    runs = error.details.fromJournalFiles as RunSummary[];
    lost = error.cause as BelayError;
  }
  const matches = runs.filter((run) => run.runId === query || run.runId.startsWith(query));
  if (matches.length !== 1) {
    const message = matches.length === 0 ? `no run ${query}` : `run ${query} is ambiguous: ${matches.map((m) => m.runId).join(', ')}`;
    throw usageError(lost ? `${message} in the journal files (and ${lost.message})` : message, { hint: lost?.hint ?? 'List runs with `belay history`.' });
  }
  const run = matches[0]!;
  const file = journalFile(setup.config.backupsDir, run.runId);
  if (!lost) {
    const session = await openTargetSession(setup, 'belay history');
    try {
      const steps = await readRunSteps(session.client, run.runId);
      if (steps.length > 0) return { run: (await readRun(session.client, run.runId)) ?? run, source: 'database', journalFile: file, steps };
    } finally {
      await session.close();
    }
  }
  let lines: JournalLine[] = [];
  try {
    lines = await readJournalFile(file);
  } catch {
    // neither copy has the steps
  }
  const steps = lines.filter((line) => line.type === 'step').map(({ type: _type, ...record }) => record as JournalRecord);
  const history: RunHistory = { run, steps, source: 'journal file', journalFile: file };
  if (lost) throw unreachable(lost, setup.config.backupsDir, 'its steps are', history);
  return history;
}
