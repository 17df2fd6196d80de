import type { ClientBase } from 'pg';
import { belaySchemaExists } from '../../db/belay-schema.js';
import { preflightError } from '../../errors.js';
import { RUN_COLUMNS, toRunSummary, type RunRow, type RunSummary } from '../commands/status.js';

/** Runs marked running whose process is gone (the lock is ours, so none of them is alive). */
export async function findUnfinishedRuns(client: ClientBase, except?: string): Promise<RunSummary[]> {
  if (!(await belaySchemaExists(client))) return [];
  const { rows } = await client.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM belay.runs WHERE status = 'running' AND id::text <> coalesce($1, '') ORDER BY started_at DESC`,
    [except ?? null],
  );
  return rows.map(toRunSummary);
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
