import type { ClientBase } from 'pg';
import { belaySchemaExists } from '../../db/belay-schema.js';
import { describeTarget } from '../../db/connection.js';
import { discoverRevisions } from '../../migrations/discover.js';
import { readDatabaseState, type DriftedRevision } from '../session/database-state.js';
import { describeLockHolder, type LockHolderInfo } from '../session/run-lock.js';
import { planRecovery, type RecoveryPlan } from '../recovery/recovery-plan.js';
import { openTargetSession, type RunSetup } from '../session/setup.js';
import { findUnfinishedRuns } from '../session/unfinished-runs.js';

export interface RunSummary {
  runId: string;
  command: string;
  status: string;
  startedAt: string;
  finishedAt: string | null;
  fromRevision: string | null;
  toRevision: string | null;
  exitCode: number | null;
  snapshotId: string | null;
  lastStep: string | null;
  runBy: string;
}

export interface StatusReport {
  target: string;
  source: string;
  serverVersion: string;
  initialised: boolean;
  current: string | null;
  applied: Array<{ name: string; appliedAt: string; durationMs: number; drifted: boolean }>;
  pending: string[];
  drift: DriftedRevision[];
  missing: string[];
  outOfOrder: string[];
  lock: LockHolderInfo | null;
  lastRun: RunSummary | null;
  /** A run that was killed or lost its connection, and what `belay recover` will do about it. */
  interrupted: Omit<RecoveryPlan, 'fingerprint'> | null;
}

export interface RunRow {
  id: string;
  command: string;
  status: string;
  started_at: Date;
  finished_at: Date | null;
  from_revision: string | null;
  to_revision: string | null;
  exit_code: number | null;
  snapshot_id: string | null;
  last_step: string | null;
  run_by: string;
}

export function toRunSummary(row: RunRow): RunSummary {
  return {
    runId: row.id,
    command: row.command,
    status: row.status,
    startedAt: row.started_at.toISOString(),
    finishedAt: row.finished_at?.toISOString() ?? null,
    fromRevision: row.from_revision,
    toRevision: row.to_revision,
    exitCode: row.exit_code,
    snapshotId: row.snapshot_id,
    lastStep: row.last_step,
    runBy: row.run_by,
  };
}

export const RUN_COLUMNS =
  'id, command, status, started_at, finished_at, from_revision, to_revision, exit_code, snapshot_id, last_step, run_by';

export async function readRuns(client: ClientBase, limit: number): Promise<RunSummary[]> {
  if (!(await belaySchemaExists(client))) return [];
  const { rows } = await client.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM belay.runs ORDER BY started_at DESC LIMIT $1`, [limit]);
  return rows.map(toRunSummary);
}

/** Where the database stands; reads only, takes no lock. */
export async function runStatus(setup: RunSetup): Promise<StatusReport> {
  const revisions = await discoverRevisions(setup.config.migrationsDir);
  const session = await openTargetSession(setup, 'belay status');
  try {
    const client = session.client;
    const state = await readDatabaseState(client, revisions);
    const drifted = new Set(state.drift.map((d) => d.name));
    const { rows } = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    const [lastRun] = await readRuns(client, 1);
    const lock = (await describeLockHolder(client)) ?? null;
    // a run marked running is interrupted unless it is the one holding the lock right now
    const interruptedRun = (await findUnfinishedRuns(client)).find((run) => run.runId !== lock?.run?.runId);
    let interrupted: StatusReport['interrupted'] = null;
    if (interruptedRun) {
      const { fingerprint: _fingerprint, ...plan } = await planRecovery(client, setup.config.backupsDir, interruptedRun, revisions);
      interrupted = plan;
    }
    return {
      target: describeTarget(setup.target),
      source: setup.target.source,
      serverVersion: rows[0]?.v ?? 'unknown',
      initialised: state.initialised,
      current: state.current,
      applied: state.applied.map((row) => ({ name: row.name, appliedAt: row.appliedAt, durationMs: row.durationMs, drifted: drifted.has(row.name) })),
      pending: state.pending.map((revision) => revision.name),
      drift: state.drift,
      missing: state.missing,
      outOfOrder: state.outOfOrder,
      lock,
      lastRun: lastRun ?? null,
      interrupted,
    };
  } finally {
    await session.close();
  }
}
