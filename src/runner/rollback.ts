import type { Manifest } from '../backup/manifest.js';
import { findSnapshot, listSnapshots } from '../backup/snapshot-store.js';
import { verifySnapshot } from '../backup/snapshot-store.js';
import { resolveBackupTools } from '../backup/pg-tools.js';
import { BelayError, EXIT, usageError } from '../errors.js';
import { discoverRevisions } from '../migrations/discover.js';
import { MigrationEngine } from '../migrations/engine.js';
import { resolveRevisionName } from '../migrations/resolve-name.js';
import type { Revision } from '../migrations/revision.js';
import { isReversible } from '../migrations/run-revision.js';
import { readDatabaseState } from './database-state.js';
import { runHealthStep } from './health-step.js';
import { runHookStep } from './hook-step.js';
import { runIntegrityStep } from './integrity-step.js';
import { baseResult, finishRun, withRunSession } from './outcome.js';
import { describeDataAtRisk } from '../integrity/data-at-risk.js';
import { captureStructure } from '../integrity/structural.js';
import { dataAtRiskOf, revisionsToRevert } from './plan.js';
import { assertPreflight, checkDrift, checkMissing, checkScripts, checkSearchPath, type PreflightCheck } from './preflight.js';
import type { RunResult } from './results.js';
import type { RestoreStrategy } from './restore-step.js';
import type { RunSession } from './run-session.js';
import { restoreRun, type RunProgress } from './safety-net.js';
import type { RunSetup } from './setup.js';
import { backupPreflight, fingerprintAndSnapshot } from './snapshot-step.js';

export interface RollbackOptions {
  to: string;
  noBackup?: boolean;
  /** Skip the downs and restore this snapshot (id, unique prefix or manifest path). */
  restoreFrom?: string;
  strategy?: RestoreStrategy;
  healthTimeout?: number;
  /** Asked once the plan is known; answer false to stop before anything changes. */
  confirm?: (summary: string) => Promise<boolean>;
}

/** The newest snapshot of this database taken at or below `revision`, for the irreversible case. */
async function snapshotAtOrBelow(setup: RunSetup, revisions: Revision[], revision: string): Promise<Manifest | undefined> {
  const order = new Map(revisions.map((r, index) => [r.name, index]));
  const limit = order.get(revision) ?? -1;
  const { snapshots } = await listSnapshots(setup.config.backupsDir);
  return snapshots.find((m) => !m.quarantine && m.database === setup.target.database && (m.revision === null || (order.get(m.revision) ?? Infinity) <= limit));
}

/**
 * `rollback --to REV`: the forward machine pointed down. lock → plan →
 * preflight → fingerprint → backup → onRollback → downs → afterRollback →
 * health → integrity (common columns) → restore on corruption.
 */
export async function runRollback(setup: RunSetup, options: RollbackOptions): Promise<RunResult> {
  const revisions = await discoverRevisions(setup.config.migrationsDir);
  const target = resolveRevisionName(options.to, revisions.map((r) => r.name));
  return withRunSession(setup, 'rollback', async (session) => {
    await session.lock();
    const state = await readDatabaseState(session.work.client, revisions);
    const applied = new Set(state.applied.map((row) => row.name));
    if (!applied.has(target)) {
      throw usageError(`--to ${target} is not applied (the database is at ${state.current ?? 'the start'})`, {
        hint: 'Roll back to an applied revision below the current one; `belay status` lists them.',
      });
    }
    if (target === state.current) {
      throw usageError(`--to ${target} is the current revision: nothing to roll back`, { hint: 'Name a revision below it.' });
    }
    const toRevert = revisionsToRevert(revisions, applied, target);
    await session.startJournal(state.current, target);
    const { events } = setup;
    const atRisk = await events.step(
      { step: 'plan' },
      () => dataAtRiskOf(session.work.client, toRevert),
      (risk) => ({ from: state.current, to: target, revert: toRevert.map((r) => r.name), dataAtRisk: risk }),
    );

    let restoreFrom: Manifest | undefined;
    const checks = await events.step(
      { step: 'preflight' },
      async () => {
        const found: PreflightCheck[] = [checkDrift(state), checkMissing(state)];
        if (options.restoreFrom !== undefined) {
          restoreFrom = await findSnapshot(setup.config.backupsDir, options.restoreFrom);
          found.push(await checkRestoreSource(setup, session, restoreFrom));
        } else {
          const irreversible: string[] = [];
          for (const revision of toRevert) if (!(await isReversible(revision))) irreversible.push(revision.name);
          if (irreversible.length > 0) {
            const offer = await snapshotAtOrBelow(setup, revisions, target);
            found.push({
              name: 'downs',
              ok: false,
              message: `revisions without a down stand between ${state.current} and ${target}: ${irreversible.join(', ')}`,
              hint: offer
                ? `Restore a snapshot instead: belay rollback --to ${options.to} --restore-from ${offer.id} (taken ${offer.createdAt} at ${offer.revision ?? 'the start'}).`
                : 'No snapshot at or below that revision exists; restore one of your own backups.',
            });
          }
          found.push(await checkScripts(toRevert, 'down'), await checkSearchPath(session.work.client));
          if (!options.noBackup) found.push(...(await backupPreflight(setup, session.control)));
        }
        assertPreflight(found);
        return found;
      },
      (found) => ({ checks: found }),
    );
    if (options.confirm) {
      const what = restoreFrom
        ? `restore snapshot ${restoreFrom.id} over ${setup.target.database} (now at ${state.current})`
        : `revert ${toRevert.map((r) => r.name).join(', ')} on ${setup.target.database}, dropping ${describeDataAtRisk(atRisk)}`;
      if (!(await options.confirm(what))) {
        throw new BelayError('usage', 'rollback not confirmed; nothing was changed', { hint: 'Pass --yes to skip the question.' });
      }
    }
    await session.attachDatabaseJournal();
    const result: RunResult = { ...baseResult(session, state.current, checks), revisions: toRevert.map((r) => ({ name: r.name, status: 'pending' })) };
    const taken = restoreFrom ? undefined : await fingerprintAndSnapshot(session, state.current, { perColumn: true, dump: !options.noBackup });
    if (taken?.dumpError !== undefined) throw taken.dumpError;
    const fingerprint = restoreFrom ? ((restoreFrom.fingerprint as RunProgress['fingerprint']) ?? null) : (taken?.fingerprint ?? null);
    const progress: RunProgress = {
      session,
      priorRevision: state.current,
      fingerprint,
      snapshot: restoreFrom ?? null,
      applied: [],
      result,
      healthTimeoutSeconds: options.healthTimeout ?? setup.config.health.timeoutSeconds,
      tolerated: new Set(),
      structure: await captureStructure(session.work.client),
      restoreStrategy: options.strategy ?? 'swap',
    };
    if (restoreFrom) {
      progress.restoreIsGoal = true;
      return await restoreRun(progress, `restoring ${restoreFrom.id} as asked (--restore-from)`);
    }
    const snapshot = taken?.snapshot;
    if (snapshot) {
      progress.snapshot = snapshot;
      result.snapshot = { id: snapshot.id, path: snapshot.path, sha256: snapshot.sha256, sizeBytes: snapshot.sizeBytes };
    }
    return await revertAll(progress, toRevert, target);
  });
}

async function checkRestoreSource(setup: RunSetup, session: RunSession, manifest: Manifest): Promise<PreflightCheck> {
  if (manifest.database !== setup.target.database) {
    return { name: 'restore-from', ok: false, message: `snapshot ${manifest.id} is of database ${manifest.database}, not ${setup.target.database}`, hint: 'Pick a snapshot of this database: `belay backups list`.' };
  }
  const tools = await resolveBackupTools({ search: setup.pgSearch, serverMajor: Math.floor(session.control.serverVersionNum / 10000) });
  const verdict = await verifySnapshot(manifest, tools, setup.env);
  return verdict.ok
    ? { name: 'restore-from', ok: true, message: `snapshot ${manifest.id} verified (sha256 and pg_restore --list)` }
    : { name: 'restore-from', ok: false, message: `snapshot ${manifest.id} failed verification: ${verdict.problems.join('; ')}`, hint: 'It may be damaged or tampered with; pick another (`belay backups list`).' };
}

async function revertAll(progress: RunProgress, toRevert: Revision[], target: string): Promise<RunResult> {
  const { session, result } = progress;
  const { events } = session.setup;
  await runHookStep(session, 'onRollback', { from: progress.priorRevision, to: target, outcome: 'rolling-back' });
  const engine = new MigrationEngine(toRevert, session.work.client, session.runId, {
    log: (revision, message) => void events.emit({ type: 'note', step: 'down', revision: revision.name, message }),
  });
  for (const [index, revision] of toRevert.entries()) {
    try {
      await events.step({ step: 'down', revision: revision.name }, () => engine.down(revision.name));
    } catch (error) {
      result.revisions[index]!.status = 'failed';
      return restoreRun(progress, `the down of ${revision.name} failed: ${(error as Error).message}`);
    }
    result.revisions[index]!.status = 'reverted';
    result.toRevision = toRevert[index + 1]?.name ?? target;
  }
  result.toRevision = target;
  const hookOk = await runHookStep(session, 'afterRollback', { from: progress.priorRevision, to: target, outcome: 'rolled-back' });
  const health = await runHealthStep(session, 'after-rollback', progress.healthTimeoutSeconds, new Set(), progress.structure);
  const integrity = await runIntegrityStep(session, progress.fingerprint, 'common-columns', session.work.client, progress.structure);
  if (!integrity.intact) {
    return restoreRun(progress, `the downs changed data they must keep: ${integrity.differences.map((d) => d.message).join('; ')}`);
  }
  if (!health.healthy || !hookOk) {
    return finishRun(session, {
      ...result,
      outcome: 'manual-action-needed',
      exitCode: EXIT.manual,
      message: `rolled back to ${target} with data verified, but ${hookOk ? 'health checks fail' : 'the afterRollback hook failed'}`,
      hint: 'Check the application; `belay verify` runs the checks again.',
    });
  }
  return finishRun(session, { ...result, outcome: 'ok', message: `rolled back to ${target}; healthy, data verified` });
}

