import { sweepAfterKilledRuns } from '../../backup/leftovers.js';
import type { Manifest } from '../../backup/manifest.js';
import { findSnapshot } from '../../backup/snapshot-store.js';
import { discoverRevisions } from '../../migrations/discover.js';
import type { Revision } from '../../migrations/revision.js';
import { findUnsettled, planRecovery, type RecoveryPlan } from '../recovery/recovery-plan.js';
import { checkRestored, restoreThenVerify, revertThenVerify, type Recovery } from '../recovery/safety-net.js';
import { settleRuns, VERIFIED_OUTCOMES } from '../recovery/settle-runs.js';
import type { RunResult } from '../result/results.js';
import { readDatabaseState } from '../session/database-state.js';
import { endSessionsOf } from '../session/run-lock.js';
import { finishRun, withRunSession } from '../session/outcome.js';
import type { RunSetup } from '../session/setup.js';
import { allowConnectionsAgain, dropLeftoverCopies, finishHalfSwap, swapStopped } from '../steps/restore-step.js';
import { SCOPE_COPIES, scopeCopiesNamedIn } from '../../scope/scope-copies.js';
import { unfinishedJournals } from '../../journal/file-journal.js';
import { dropLeftMarked } from '../../db/marked-databases.js';
import { REHEARSAL_DATABASES } from '../../rehearse/throwaway.js';
import { quoteIdent } from '../../db/ident.js';
import { findStrayRuns, recordEndedRun, recordEndedRuns, recordReplacingRestores } from '../../journal/settle-snapshot-runs.js';
import { removeOrphanedWorkDirs } from '../../temp-dirs.js';

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
 * be trusted), verifies, and marks it settled. A recover that is itself
 * stopped leaves the run unsettled: the next recover plans it again, from
 * where the database is now.
 */
export async function runRecover(setup: RunSetup): Promise<RunResult> {
  const revisions = await discoverRevisions(setup.config.migrationsDir);
  // before connecting to the target: a swap killed between its renames left it missing, or refusing every session
  const swapped = await finishHalfSwap(setup);
  const reopened = await allowConnectionsAgain(setup);
  return withRunSession(setup, 'recover', async (session) => {
    await session.lock();
    await sweepAfterKilledRuns(setup.config.backupsDir, setup.target.database);
    // under the lock: the scope copies and rehearsal databases killed runs left (belay's by their marker or journal, their session gone)
    const journaledCopies = scopeCopiesNamedIn(await unfinishedJournals(setup.config.backupsDir, setup.target.database));
    const scopeCopies = await dropLeftMarked(session.control.client, SCOPE_COPIES, setup.target.database, journaledCopies);
    const rehearsals = await dropLeftMarked(session.control.client, REHEARSAL_DATABASES, setup.target.database);
    const workDirs = await removeOrphanedWorkDirs();
    const droppedNote = [
      ...(scopeCopies.dropped.length > 0 ? [`dropped the schema-only scope cop${scopeCopies.dropped.length === 1 ? 'y' : 'ies'} a killed run left: ${scopeCopies.dropped.join(', ')}`] : []),
      ...scopeCopies.kept.map((k) => `could not drop the scope copy ${k.name} a killed run left (${k.why}): drop it as its owner, DROP DATABASE ${quoteIdent(k.name)};`),
      ...(rehearsals.dropped.length > 0 ? [`dropped the throwaway database${rehearsals.dropped.length === 1 ? '' : 's'} a killed rehearse left: ${rehearsals.dropped.join(', ')}`] : []),
      ...rehearsals.kept.map((k) => `could not drop the throwaway database ${k.name} a killed rehearse left (${k.why}): drop it as its owner, DROP DATABASE ${quoteIdent(k.name)};`),
    ].join('; ');
    // a restore killed once the snapshot was in place: the database's record of it went with what it held
    await recordReplacingRestores(session.control.client, setup.config.backupsDir, setup.target.database, session.runId, session.runId);
    // one that ended 12 between the renames keeps that outcome, recorded in the copy now in place, as the run would have
    if (swapped?.ended) await recordEndedRun(session.control.client, setup.config.backupsDir, swapped.runId);
    // a run whose journal file holds its outcome ended, though the server stopped before its row said so: brought in line, never done again
    const endedRuns = await recordEndedRuns(session.control.client, setup.config.backupsDir, session.runId);
    const { run, others } = await findUnsettled(session.control.client, setup.config.backupsDir, session.runId);
    // before reading where the database stands: nothing of those runs may still change it
    const lingering = run ? await endSessionsOf(session.control.client, [run, ...others].map((r) => r.runId)) : { ended: [], waitedFor: [] };
    const state = await readDatabaseState(session.work.client, revisions);
    await session.startJournal(state.current, run?.fromRevision ?? state.current);
    const swappedNote = swapped && {
      message: `renamed ${swapped.copy} to ${setup.target.database}: ${swapStopped(swapped)} between the renames of its swap restore, after verifying that copy and renaming the damaged database ${swapped.quarantine}`,
      detail: { renamed: swapped.copy, quarantine: swapped.quarantine },
    };
    if (swappedNote) await setup.events.emit({ type: 'note', step: 'lock', ...swappedNote });
    const reopenedWords = `turned connections to ${reopened.join(', ')} back on: a swap restore that did not finish had turned them off`;
    if (reopened.length > 0) await setup.events.emit({ type: 'note', step: 'lock', message: reopenedWords, detail: { reopened } });
    const endedWords: string[] = [];
    for (const { runId, outcome, restoreCopies } of endedRuns) {
      const copies = await dropLeftoverCopies(setup, restoreCopies);
      const words = `run ${runId} had ended ${outcome.status} (exit ${outcome.exitCode}), as its journal file says; its record in ${setup.target.database} said running, and now says so too${copies.length > 0 ? `; dropped the copy it left: ${copies.join(', ')}` : ''}`;
      endedWords.push(words);
      await setup.events.emit({ type: 'note', step: 'lock', message: words, detail: { recorded: runId, status: outcome.status, exitCode: outcome.exitCode, dropped: copies } });
    }
    if (workDirs.length > 0) {
      await setup.events.emit({ type: 'note', step: 'lock', message: `removed the work folder${workDirs.length === 1 ? '' : 's'} killed runs left in the temp dir: ${workDirs.join(', ')}`, detail: { removedWorkDirs: workDirs } });
    }
    if (droppedNote) await setup.events.emit({ type: 'note', step: 'lock', message: droppedNote, detail: { droppedScopeCopies: scopeCopies.dropped, keptScopeCopies: scopeCopies.kept, droppedRehearsals: rehearsals.dropped, keptRehearsals: rehearsals.kept } });
    if (!run) {
      const unrecorded = (await findStrayRuns(session.control.client, setup.config.backupsDir, setup.target.database, session.runId)).map(({ header }) => header.runId);
      // settleRuns records them in the database, which may not have belay's schema yet
      if (unrecorded.length > 0) await session.attachDatabaseJournal();
      const what =
        unrecorded.length === 0
          ? 'no interrupted run: nothing to recover'
          : `${unrecorded.length === 1 ? `run ${unrecorded[0]} ended before it changed anything` : `runs ${unrecorded.join(', ')} ended before they changed anything`}: recorded as interrupted`;
      const result = await finishRun(session, { outcome: 'ok', message: [what, ...(swappedNote ? [swappedNote.message] : []), ...(reopened.length > 0 ? [reopenedWords] : []), ...endedWords, ...(droppedNote ? [droppedNote] : [])].join('; ') });
      await settleRuns(session, [], result.outcome);
      return result;
    }
    await session.attachDatabaseJournal();
    const { ended, waitedFor } = lingering;
    if (ended.length + waitedFor.length > 0) {
      const what = (pids: number[]): string => `${pids.length} session(s) the interrupted run left on the server (pid ${pids.join(', ')})`;
      const told = [
        ...(ended.length > 0 ? [`ended ${what(ended)}; what they had not committed rolled back`] : []),
        ...(waitedFor.length > 0 ? [`waited for ${what(waitedFor)} to end (this role may not end them)`] : []),
      ];
      await setup.events.emit({ type: 'note', step: 'lock', message: told.join('; '), detail: { ended, waitedFor } });
    }
    const plan = await setup.events.step(
      { step: 'plan' },
      () => planRecovery(session.control.client, setup.config.backupsDir, run, others, revisions),
      ({ fingerprint: _fingerprint, landing: _landing, ...p }) => ({ ...p, from: state.current, to: p.target }),
    );
    const dropped = await dropLeftoverCopies(setup, plan.leftovers);
    if (dropped.length > 0) await setup.events.emit({ type: 'note', step: 'restore', message: `dropped what a stopped restore left: ${dropped.join(', ')}`, detail: { dropped } });
    const snapshot = await snapshotOf(setup, plan);
    const recovery: Recovery = {
      session,
      goal: 'settle',
      toRevert: plan.revert.map((name) => revisions.find((r) => r.name === name)).filter((r): r is Revision => r !== undefined),
      target: plan.target,
      fingerprint: plan.fingerprint ?? ((snapshot?.fingerprint as Recovery['fingerprint']) ?? null),
      snapshot,
      compare: plan.action === 'finish-rollback' || run.command === 'rollback' ? 'common-columns' : 'same-schema',
      healthTimeoutSeconds: setup.config.health.timeoutSeconds,
      tolerated: new Set(),
      restoreStrategy: 'swap',
      // the baseline the run's rollback journaled before its first down, when it leads where these downs do
      ...(plan.landing && plan.landing.target === plan.target ? { landing: plan.landing } : {}),
    };
    const why = `settling run ${run.runId}: ${plan.why}`;
    let outcome: RunResult;
    if (plan.action === 'nothing') outcome = await finishRun(session, { outcome: 'ok', message: `run ${run.runId}: ${plan.why}` });
    else if (plan.action === 'restore' && plan.snapshotId && !snapshot) {
      outcome = await finishRun(session, {
        outcome: 'manual-action-needed',
        message: `${why}; but its snapshot ${plan.snapshotId} is not (or no longer readable) in ${setup.config.backupsDir}`,
        hint: `Point --backups at the folder that holds snapshot ${plan.snapshotId} and run \`belay recover\` again, or restore another snapshot (\`belay backups list\`, \`belay restore ID\`).`,
      });
    } else if (plan.action === 'verify-restore') outcome = await checkRestored(recovery, why);
    else if (plan.action === 'restore') outcome = await restoreThenVerify(recovery, why);
    else outcome = await revertThenVerify(recovery, { message: why, untrustworthy: false });
    // the newest of them was the last to change the database: it left it where this run found it
    const newest = [run, ...others].reduce((a, b) => (b.startedAt > a.startedAt ? b : a));
    const settled = [run.runId, ...others.map((r) => r.runId), ...(plan.settling ? [plan.settling] : [])];
    if (VERIFIED_OUTCOMES.has(outcome.outcome)) await settleRuns(session, settled, outcome.outcome, new Map([[newest.runId, state.current]]));
    return outcome;
  });
}
