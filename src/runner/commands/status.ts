import { describeTarget } from '../../db/connection.js';
import { readRuns, type RunSummary } from '../../journal/run-store.js';
import { discoverRevisions } from '../../migrations/discover.js';
import { readDatabaseState, type DriftedRevision } from '../session/database-state.js';
import { describeLockHolder, type LockHolderInfo } from '../session/run-lock.js';
import { findUnsettled, planRecovery, type RecoveryPlan } from '../recovery/recovery-plan.js';
import { openTargetSession, type RunSetup } from '../session/setup.js';

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
    const { run: interruptedRun, others } = await findUnsettled(client, lock?.run?.runId);
    let interrupted: StatusReport['interrupted'] = null;
    if (interruptedRun) {
      const { fingerprint: _fingerprint, ...plan } = await planRecovery(client, setup.config.backupsDir, interruptedRun, others, revisions);
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
