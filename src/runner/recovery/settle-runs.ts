import { belaySchemaExists } from '../../db/belay-schema.js';
import { markRunsSettled } from '../../journal/run-store.js';
import { recordStrayRuns } from '../../journal/settle-snapshot-runs.js';
import type { RunSession } from '../session/run-session.js';

/** Outcomes after which the database is verified: only then are interrupted runs settled. */
export const VERIFIED_OUTCOMES: ReadonlySet<string> = new Set(['ok', 'rolled-back', 'restored']);

/**
 * Mark interrupted runs settled by this one, once it has verified the
 * database (`recover`, or a `restore` of a verified snapshot). The runs only
 * journal files know of (killed before they wrote to the database, or begun
 * after the snapshot a restore put back) are recorded and settled too, so
 * that `history` calls none of them unfinished.
 */
export async function settleRuns(session: RunSession, runIds: string[], outcome: string): Promise<void> {
  const { setup } = session;
  // no connection after a restore: the runs stay unsettled for the next recover, which finds the database verified
  if (!session.connected) return;
  const client = session.control.client;
  if (!(await belaySchemaExists(client))) return;
  const strays = await recordStrayRuns(client, setup.config.backupsDir, setup.target.database, session.runId);
  await markRunsSettled(client, [...new Set([...runIds, ...strays])], session.runId, outcome);
}
