import type { Manifest } from '../backup/manifest.js';
import { sweepAfterKilledRuns } from '../backup/leftovers.js';
import { findSnapshot } from '../backup/snapshot-store.js';
import { discoverRevisions } from '../migrations/discover.js';
import type { Revision } from '../migrations/revision.js';
import { readDatabaseState } from './database-state.js';
import { baseResult, finishRun, withRunSession } from './outcome.js';
import { planRecovery, type RecoveryPlan } from './recovery-plan.js';
import type { RunResult } from './results.js';
import type { RunSession } from './run-session.js';
import { restoreRun, rollBackRun, type RunProgress } from './safety-net.js';
import type { RunSetup } from './setup.js';
import { findUnfinishedRuns } from './unfinished-runs.js';

async function snapshotOf(setup: RunSetup, plan: RecoveryPlan): Promise<Manifest | null> {
  if (!plan.snapshotId) return null;
  try {
    return await findSnapshot(setup.config.backupsDir, plan.snapshotId);
  } catch {
    return null;
  }
}

/**
 * `belay recover`: settle a run that was killed or lost its connection. It
 * finishes the safety net's decision for that run (down to its prior
 * revision, finish a rollback, or restore its snapshot when the state cannot
 * be trusted), verifies, and records the outcome on both runs.
 */
export async function runRecover(setup: RunSetup): Promise<RunResult> {
  const revisions = await discoverRevisions(setup.config.migrationsDir);
  return withRunSession(setup, 'recover', async (session) => {
    await session.lock();
    await sweepAfterKilledRuns(setup.config.backupsDir, setup.target.database);
    const [run, ...older] = await findUnfinishedRuns(session.control.client, session.runId);
    const state = await readDatabaseState(session.work.client, revisions);
    await session.startJournal(state.current, run?.fromRevision ?? state.current);
    const result = baseResult(session, state.current);
    if (!run) return await finishRun(session, { ...result, message: 'no interrupted run: nothing to recover' });
    await session.attachDatabaseJournal();
    const plan = await setup.events.step({ step: 'plan' }, () => planRecovery(session.control.client, setup.config.backupsDir, run, revisions), (p) => ({ ...p, fingerprint: undefined }));
    const snapshot = await snapshotOf(setup, plan);
    const toRevert = plan.revert.map((name) => revisions.find((r) => r.name === name)).filter((r): r is Revision => r !== undefined);
    result.revisions = toRevert.map((r) => ({ name: r.name, status: 'pending' }));
    const progress: RunProgress = {
      session,
      priorRevision: plan.target,
      fingerprint: plan.fingerprint ?? ((snapshot?.fingerprint as RunProgress['fingerprint']) ?? null),
      snapshot,
      applied: [...toRevert].reverse(),
      result,
      healthTimeoutSeconds: setup.config.health.timeoutSeconds,
      tolerated: new Set(),
      restoreStrategy: 'swap',
    };
    let outcome: RunResult;
    if (plan.action === 'nothing') outcome = await finishRun(session, { ...result, message: `run ${run.runId}: ${plan.why}` });
    else if (plan.action === 'restore') outcome = await restoreRun(progress, `settling run ${run.runId}: ${plan.why}`);
    else outcome = await rollBackRun(progress, { message: `settling run ${run.runId}: ${plan.why}`, untrustworthy: false, compare: plan.action === 'finish-rollback' ? 'common-columns' : 'same-schema' });
    await markSettled(session, [run.runId, ...older.map((r) => r.runId)], outcome);
    return outcome;
  });
}

async function markSettled(session: RunSession, runIds: string[], outcome: RunResult): Promise<void> {
  for (const id of runIds) {
    await session.control.client.query(
      `UPDATE belay.runs SET status = 'interrupted', finished_at = coalesce(finished_at, now()),
              summary = coalesce(summary, '{}'::jsonb) || jsonb_build_object('settledBy', $2::text, 'settledOutcome', $3::text)
        WHERE id = $1 AND status = 'running'`,
      [id, session.runId, outcome.outcome],
    );
  }
}
