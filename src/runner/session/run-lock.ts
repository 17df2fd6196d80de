import type { ClientBase } from 'pg';
import { findLockHolder, tryAdvisoryLock, type LockHolder } from '../../db/advisory-lock.js';
import { BelayError, preflightError } from '../../errors.js';
import { findRunningBySuffix, findUnfinishedRuns, type RunSummary } from '../../journal/run-store.js';

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

function withRun(holder: LockHolder, run: RunSummary | undefined): LockHolderInfo {
  return { ...holder, run: run && { runId: run.runId, command: run.command, startedAt: run.startedAt, runBy: run.runBy, lastStep: run.lastStep } };
}

export async function describeLockHolder(client: ClientBase): Promise<LockHolderInfo | undefined> {
  const holder = await findLockHolder(client);
  if (!holder) return undefined;
  const suffix = runIdSuffix(holder);
  return withRun(holder, suffix ? await findRunningBySuffix(client, suffix) : undefined);
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
export async function acquireRunLock(client: ClientBase): Promise<void> {
  if (await tryAdvisoryLock(client)) return;
  for (const wait of DEAD_HOLDER_GRACE_MS) {
    await new Promise((resolve) => setTimeout(resolve, wait));
    if (!(await findLockHolder(client)) && (await tryAdvisoryLock(client))) return;
  }
  const holder = await describeLockHolder(client);
  const who = holder ? formatHolder(holder) : 'a session that has since ended';
  throw new BelayError('locked', `another belay run holds the lock on this database: ${who}`, {
    hint: 'Wait for it to finish (`belay status` shows it). Nothing was changed.',
    details: { holder: holder ?? null },
  });
}

/** New work waits until an interrupted run is settled: its state is not known to be sound. */
export async function refuseWhileUnfinished(client: ClientBase, runId: string): Promise<void> {
  const [run] = await findUnfinishedRuns(client, runId);
  if (!run) return;
  throw preflightError(
    `run ${run.runId} (${run.command} by ${run.runBy}, started ${run.startedAt}) was interrupted at step "${run.lastStep ?? 'start'}" and has not been settled`,
    { hint: '`belay status` says what `belay recover` will do; run `belay recover` first. Nothing was changed.', details: { run } },
  );
}
