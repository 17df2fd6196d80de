import type { ClientBase } from 'pg';
import { findLockHolder, tryAdvisoryLock, type LockHolder } from '../../db/advisory-lock.js';
import { belaySchemaExists } from '../../db/belay-schema.js';
import { BelayError } from '../../errors.js';

export interface HolderRun {
  runId: string;
  command: string;
  startedAt: string;
  runBy: string;
  lastStep: string | null;
}

export interface LockHolderInfo extends LockHolder {
  run: HolderRun | undefined;
}

/** The run the lock holder is doing, found by the run id at the end of its application_name. */
async function holderRun(client: ClientBase, holder: LockHolder): Promise<HolderRun | undefined> {
  const suffix = /([0-9a-f]{12})$/.exec(holder.applicationName)?.[1];
  if (!suffix || !(await belaySchemaExists(client))) return undefined;
  const { rows } = await client.query<{ id: string; command: string; started_at: Date; run_by: string; last_step: string | null }>(
    `SELECT id, command, started_at, run_by, last_step FROM belay.runs
      WHERE status = 'running' AND right(id::text, 12) = $1 ORDER BY started_at DESC LIMIT 1`,
    [suffix],
  );
  const row = rows[0];
  return row && { runId: row.id, command: row.command, startedAt: row.started_at.toISOString(), runBy: row.run_by, lastStep: row.last_step };
}

export async function describeLockHolder(client: ClientBase): Promise<LockHolderInfo | undefined> {
  const holder = await findLockHolder(client);
  return holder && { ...holder, run: await holderRun(client, holder) };
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
