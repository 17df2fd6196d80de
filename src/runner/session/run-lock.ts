import { basename } from 'node:path';
import type { ClientBase } from 'pg';
import { findLockHolder, tryAdvisoryLock, type LockHolder } from '../../db/advisory-lock.js';
import { SQLSTATE, sqlstateOf } from '../../db/sqlstate.js';
import { BelayError, preflightError } from '../../errors.js';
import { listJournalFiles, readJournalFile } from '../../journal/file-journal.js';
import { findRunningBySuffix, type RunSummary } from '../../journal/run-store.js';
import { findUnsettled, interruptedAt } from '../recovery/recovery-plan.js';
import { summaryFromFile } from '../result/run-record.js';
import type { PreflightCheck } from '../../events/run-events.js';

interface HolderRun {
  runId: string;
  command: string;
  startedAt: string;
  runBy: string;
  lastStep: string | null;
}

export interface LockHolderInfo extends LockHolder {
  run: HolderRun | undefined;
}

/** The end of the run id that a lock holder's application_name carries, if it is a belay run. */
function runIdSuffix(holder: LockHolder): string | undefined {
  return /([0-9a-f]{12})$/.exec(holder.applicationName)?.[1];
}

/** A run's sessions: `belay COMMAND SUFFIX` (RunSession.applicationName), its work session, and their watchers and cancels (openSibling). */
const RUN_SESSION = /^belay .+ ([0-9a-f]{12})(?: work)?(?: watch| cancel)?$/;

/** How a run's sessions are named after it (application_name ends with it). */
export const runSuffix = (runId: string): string => runId.slice(-12);

/** The run a session's application_name names, by its suffix; undefined for another program's. */
export const runSuffixOf = (applicationName: string): string | undefined => RUN_SESSION.exec(applicationName)?.[1];

/** How long the sessions of an interrupted run have to end once told to. */
const LINGERING_TIMEOUT_MS = 10_000;

/**
 * End the sessions the runs `runIds` left on the server, and wait until they
 * are gone: the pids of those belay ended, and of those this role may not end
 * (a superuser's, or another role's without pg_signal_backend), which it
 * waited for. A killed runner's work session may still be running the
 * statement it was killed in, and would then run what was sent
 * with it (a down's record and COMMIT) after recover had read where the
 * database stands. Ended, its transaction rolls back, as a killed runner's
 * does. Sessions this role may not end are waited for; one still there after
 * the wait keeps recover from starting (exit 3).
 */
export async function endSessionsOf(client: ClientBase, runIds: readonly string[]): Promise<{ ended: number[]; waitedFor: number[] }> {
  const suffixes = new Set(runIds.map(runSuffix));
  const { rows } = await client.query<{ pid: number; application_name: string }>(
    `SELECT pid, application_name FROM pg_catalog.pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND starts_with(application_name, 'belay ')`,
  );
  const pids = rows.filter((row) => suffixes.has(runSuffixOf(row.application_name) ?? '')).map((row) => row.pid);
  const ended: number[] = [];
  const waitedFor: number[] = [];
  if (pids.length === 0) return { ended, waitedFor };
  // one at a time: a session this role may not signal fails its own call only
  for (const pid of pids) {
    const outcome = await client.query<{ ok: boolean }>('SELECT pg_catalog.pg_terminate_backend($1) AS ok', [pid]).then(
      // false: it had ended by itself before the signal (named in neither list)
      ({ rows: [row] }) => (row?.ok === true ? 'ended' : 'gone'),
      (error: unknown) => {
        // insufficient_privilege: a superuser's session, or another role's without pg_signal_backend
        if (sqlstateOf(error) !== SQLSTATE.insufficientPrivilege) throw error;
        return 'refused';
      },
    );
    if (outcome === 'ended') ended.push(pid);
    else if (outcome === 'refused') waitedFor.push(pid);
  }
  const deadline = Date.now() + LINGERING_TIMEOUT_MS;
  for (;;) {
    const { rows: left } = await client.query<{ pid: number }>('SELECT pid FROM pg_catalog.pg_stat_activity WHERE pid = ANY($1::int[])', [pids]);
    if (left.length === 0) return { ended, waitedFor };
    if (Date.now() > deadline) {
      const named = left.map((row) => row.pid).join(', ');
      throw new BelayError('locked', `the interrupted run's session(s) ${named} still run on the server, and may still change the database`, {
        hint: `Wait for them to end, or end them as their role or a superuser (SELECT pg_terminate_backend(${left[0]!.pid})), then run \`belay recover\` again. Nothing was changed.`,
        details: { pids: left.map((row) => row.pid) },
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function withRun(holder: LockHolder, run: RunSummary | undefined): LockHolderInfo {
  return { ...holder, run: run && { runId: run.runId, command: run.command, startedAt: run.startedAt, runBy: run.runBy, lastStep: run.lastStep } };
}

/** A run that has not written to the database yet (in its preflight) is told of by its journal file alone. */
async function journaledRunBySuffix(backupsDir: string, suffix: string): Promise<RunSummary | undefined> {
  const file = (await listJournalFiles(backupsDir)).find((path) => basename(path, '.jsonl').endsWith(suffix));
  const lines = file === undefined ? undefined : await readJournalFile(file).catch(() => undefined);
  return lines && summaryFromFile(lines);
}

export async function describeLockHolder(client: ClientBase, backupsDir: string): Promise<LockHolderInfo | undefined> {
  const holder = await findLockHolder(client);
  if (!holder) return undefined;
  const suffix = runIdSuffix(holder);
  return withRun(holder, suffix ? ((await findRunningBySuffix(client, suffix)) ?? (await journaledRunBySuffix(backupsDir, suffix))) : undefined);
}

/** The same from rows already read: `running` is every run marked running, newest first. */
export function lockHolderAmong(holder: LockHolder, running: readonly RunSummary[]): LockHolderInfo {
  const suffix = runIdSuffix(holder);
  return withRun(holder, suffix ? running.find((run) => run.runId.endsWith(suffix)) : undefined);
}

export function formatHolder(holder: LockHolderInfo): string {
  const run = holder.run
    ? `run ${holder.run.runId} (${holder.run.command} by ${holder.run.runBy}, since ${holder.run.startedAt}, at step ${holder.run.lastStep ?? 'start'})`
    : `connected since ${holder.backendStart}`;
  return `pid ${holder.pid} "${holder.applicationName}" as ${holder.user}${holder.clientAddress ? ` from ${holder.clientAddress}` : ''}, ${run}`;
}

/** A killed runner's session ends as soon as the server reads the closed socket: give that a moment. */
const DEAD_HOLDER_GRACE_MS = [50, 100, 200];

/** Take belay's advisory lock or fail at once (exit 3) naming who holds it. */
export async function acquireRunLock(client: ClientBase, backupsDir: string): Promise<void> {
  if (await tryAdvisoryLock(client)) return;
  for (const wait of DEAD_HOLDER_GRACE_MS) {
    await new Promise((resolve) => setTimeout(resolve, wait));
    if (!(await findLockHolder(client)) && (await tryAdvisoryLock(client))) return;
  }
  const holder = await describeLockHolder(client, backupsDir);
  const who = holder ? formatHolder(holder) : 'a session that has since ended';
  throw new BelayError('locked', `another belay run holds the lock on this database: ${who}`, {
    hint: 'Wait for it to finish (`belay status` shows it). Nothing was changed.',
    details: { holder: holder ?? null },
  });
}

/**
 * New work waits until an interrupted run is settled: its state is not known
 * to be sound. The failed check names the run and the step `belay status`
 * names, read from the same records (the journal file first: the database
 * copy may lag it). `live` is the run that holds the lock (the caller's own,
 * or the one running now when the caller takes no lock): it is not interrupted.
 */
async function checkUnsettled(client: ClientBase, live: string | undefined, backupsDir: string): Promise<(PreflightCheck & { run: RunSummary }) | undefined> {
  const { run, others } = await findUnsettled(client, backupsDir, live);
  if (!run) return undefined;
  const step = await interruptedAt(client, backupsDir, run, others);
  return {
    name: 'unsettled',
    ok: false,
    message: `run ${run.runId} (${run.command} by ${run.runBy}, started ${run.startedAt}) was interrupted at step "${step ?? 'start'}" and has not been settled`,
    hint: '`belay status` says what `belay recover` will do; run `belay recover` first.',
    run: { ...run, lastStep: step },
  };
}

/** The same for a command that takes no lock (plan, a dry run): the run holding it now is not interrupted. */
export async function checkUnsettledUnlocked(client: ClientBase, backupsDir: string): Promise<PreflightCheck[]> {
  const found = await checkUnsettled(client, (await describeLockHolder(client, backupsDir))?.run?.runId, backupsDir);
  if (!found) return [];
  const { run: _run, ...check } = found;
  return [check];
}

/** Exit 4 when an earlier run was interrupted and not yet settled. */
export async function refuseWhileUnfinished(client: ClientBase, runId: string, backupsDir: string): Promise<void> {
  const found = await checkUnsettled(client, runId, backupsDir);
  if (!found) return;
  throw preflightError(found.message, { hint: `${found.hint} Nothing was changed.`, details: { run: found.run } });
}
