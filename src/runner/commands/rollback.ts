import type { Manifest } from '../../backup/manifest.js';
import { findSnapshot, listSnapshots } from '../../backup/snapshot-store.js';
import { verifySnapshot } from '../../backup/snapshot-store.js';
import { preflightError, usageError } from '../../errors.js';
import { discoverRevisions } from '../../migrations/discover.js';
import type { Revision } from '../../migrations/revision.js';
import { isReversible } from '../../migrations/run-revision.js';
import { readDatabaseState } from '../session/database-state.js';
import { finishRun, withRunSession } from '../session/outcome.js';
import { describeDataAtRisk } from '../../integrity/data-at-risk.js';
import { captureStructure } from '../../integrity/structural.js';
import { dataAtRiskOf, revisionsToRevert } from './plan.js';
import { resolveRevisionOrStart } from '../../migrations/resolve-name.js';
import { assertPreflight, checkDrift, checkMissing, checkScripts, checkSearchPath, downsMissing, type PreflightCheck } from '../steps/preflight.js';
import type { RunResult } from '../result/results.js';
import type { RestoreStrategy } from '../../events/run-events.js';
import type { RunSession } from '../session/run-session.js';
import { restoreThenVerify, revertThenVerify, type Recovery } from '../recovery/safety-net.js';
import type { RunSetup } from '../session/setup.js';
import { backupPreflight, chooseBackupScope, endAfterDumpFailure, fingerprintAndSnapshot, restorePreflight, runBackupTools, stopIfSignalled, type FingerprintAndSnapshot } from '../steps/snapshot-step.js';
import type { BackupScopeMode, ScopeDecision } from '../../scope/choose-scope.js';
import type { ScopeChoice } from '../../events/run-events.js';

export interface RollbackOptions {
  to: string;
  noBackup?: boolean;
  /** Skip the downs and restore this snapshot (id, unique prefix or manifest path). */
  restoreFrom?: string;
  strategy?: RestoreStrategy;
  healthTimeout?: number;
  /** Which snapshot is taken before the downs; default backup.scope, else auto. */
  backupScope?: BackupScopeMode;
  /** Asked once the plan is known; answer false to stop before anything changes. */
  confirm?: (summary: string) => Promise<boolean>;
}

/** The newest snapshot of this database taken at or below `revision`, for the irreversible case. */
async function snapshotAtOrBelow(setup: RunSetup, revisions: Revision[], revision: string | null): Promise<Manifest | undefined> {
  const order = new Map(revisions.map((r, index) => [r.name, index]));
  const limit = revision === null ? -1 : (order.get(revision) ?? -1);
  const { snapshots } = await listSnapshots(setup.config.backupsDir);
  return snapshots.find((m) => !m.quarantine && m.database === setup.target.database && (m.revision === null || (order.get(m.revision) ?? Infinity) <= limit));
}

/** The revisions a question names: every one, or for a long rollback how many and the first and last (the plan lists them all). */
function revisionList(revisions: readonly Revision[]): string {
  if (revisions.length <= 10) return revisions.map((r) => r.name).join(', ');
  return `${revisions.length} revisions, ${revisions[0]!.name} down to ${revisions.at(-1)!.name}`;
}

/**
 * `rollback --to REV`: the forward machine pointed down. lock → plan →
 * preflight → fingerprint → backup → onRollback → downs → afterRollback →
 * health → integrity (common columns) → restore on corruption.
 */
export async function runRollback(setup: RunSetup, options: RollbackOptions): Promise<RunResult> {
  const revisions = await discoverRevisions(setup.config.migrationsDir);
  const target = resolveRevisionOrStart(options.to, revisions.map((r) => r.name));
  return withRunSession(setup, 'rollback', async (session) => {
    await session.lock();
    const state = await readDatabaseState(session.work.client, revisions);
    const applied = new Set(state.applied.map((row) => row.name));
    if (target !== null && !applied.has(target)) {
      throw usageError(`--to ${target} is not applied (the database is at ${state.current ?? 'the start'})`, {
        hint: 'Roll back to an applied revision below the current one; `belay status` lists them.',
      });
    }
    if (target === state.current) {
      const here = target ?? 'the start';
      if (options.restoreFrom !== undefined) {
        throw usageError(`--to ${options.to}: the database is already at ${here}, so there is nothing to roll back`, {
          hint: `To put snapshot ${options.restoreFrom} back over it: belay restore ${options.restoreFrom}`,
        });
      }
      // where the rollback would land: a rerun of it (an incident script) succeeds, as migrate up with nothing pending does
      await session.startJournal(state.current, state.current);
      await setup.events.step({ step: 'plan' }, async () => [], () => ({ from: state.current, to: state.current, revert: [], dataAtRisk: [] }));
      return await finishRun(session, { outcome: 'up-to-date', message: `already at ${here}; nothing to roll back` });
    }
    const toRevert = revisionsToRevert(revisions, applied, target);
    await session.startJournal(state.current, target);
    const { events } = setup;
    const atRisk = await events.step(
      { step: 'plan' },
      () => beforeChange(setup, () => dataAtRiskOf(session.work.client, toRevert)),
      (risk) => ({ from: state.current, to: target, revert: toRevert.map((r) => r.name), dataAtRisk: risk.items }),
    );
    const where = target ?? 'the start';

    let restoreFrom: Manifest | undefined;
    let scope: { decision: ScopeDecision; choice: ScopeChoice } | undefined;
    await events.step(
      { step: 'preflight' },
      () => beforeChange(setup, async () => {
        const found: PreflightCheck[] = [checkDrift(state), checkMissing(state)];
        if (options.restoreFrom !== undefined) {
          restoreFrom = await findSnapshot(setup.config.backupsDir, options.restoreFrom);
          found.push(landingOf(restoreFrom, target), await checkRestoreSource(setup, session, restoreFrom), ...(await restorePreflight(setup, session.control, restoreFrom, options.strategy ?? 'swap')));
        } else {
          const irreversible: string[] = [];
          for (const revision of toRevert) if (!(await isReversible(revision))) irreversible.push(revision.name);
          if (irreversible.length > 0) {
            const offer = await snapshotAtOrBelow(setup, revisions, target);
            found.push({
              name: 'downs',
              ok: false,
              message: downsMissing(state.current, target, irreversible),
              hint: !offer
                ? 'No snapshot at or below that revision exists; restore one of your own backups.'
                : offer.revision === target
                  ? `Restore a snapshot instead: belay rollback --to ${options.to} --restore-from ${offer.id} (taken ${offer.createdAt} at ${where}).`
                  : `Restore a snapshot instead: belay rollback --to ${offer.revision ?? '0'} --restore-from ${offer.id} (taken ${offer.createdAt} at ${offer.revision ?? 'the start'}, below ${where}), then belay migrate up --to ${options.to}.`,
            });
          }
          found.push(await checkScripts(toRevert, 'down'), await checkSearchPath(session.work.client));
          if (!options.noBackup) found.push(...(await backupPreflight(setup, session.control)));
        }
        assertPreflight(found);
        if (!restoreFrom && !options.noBackup) scope = await chooseBackupScope(session, options.backupScope, toRevert, 'down');
        stopIfSignalled(setup);
        return found;
      }),
      (found) => ({ checks: found, ...(scope ? { scope: scope.choice } : {}) }),
    );
    if (options.confirm) {
      const what = restoreFrom
        ? `restore snapshot ${restoreFrom.id} over ${setup.target.database} (now at ${state.current})`
        : `revert ${revisionList(toRevert)} on ${setup.target.database}, dropping ${describeDataAtRisk(atRisk.items)}`;
      if (!(await options.confirm(what))) {
        throw preflightError('rollback not confirmed; nothing was changed', {
          hint: setup.signal?.aborted ? 'Run it again when you are ready.' : 'Pass --yes to skip the question.',
        });
      }
    }
    await session.attachDatabaseJournal();
    let taken: FingerprintAndSnapshot | undefined;
    try {
      taken = restoreFrom ? undefined : await fingerprintAndSnapshot(session, state.current, { sums: { perColumn: atRisk.perColumn, rowsWithout: atRisk.rowsWithout }, dump: !options.noBackup, scope: scope?.decision });
      if (taken?.dumpError !== undefined) throw taken.dumpError;
    } catch (error) {
      return await endAfterDumpFailure(session, error);
    }
    const structure = await beforeChange(setup, () => captureStructure(session.work.client));
    stopIfSignalled(setup);
    session.keepWorkOnAbort();
    const recovery: Recovery = {
      session,
      goal: restoreFrom ? 'restore' : 'rollback',
      toRevert,
      target,
      fingerprint: restoreFrom ? ((restoreFrom.fingerprint as Recovery['fingerprint']) ?? null) : (taken?.fingerprint ?? null),
      snapshot: restoreFrom ?? taken?.snapshot ?? null,
      compare: 'common-columns',
      healthTimeoutSeconds: options.healthTimeout ?? setup.config.health.timeoutSeconds,
      tolerated: new Set(),
      structure,
      restoreStrategy: options.strategy ?? 'swap',
      ...(taken?.guard ? { beforeCommit: taken.guard.check.bind(taken.guard) } : {}),
    };
    if (restoreFrom) return await restoreThenVerify(recovery, `restoring ${restoreFrom.id} as asked (--restore-from)`);
    return await revertThenVerify(recovery, { message: `rollback to ${where}`, untrustworthy: false });
  });
}

/** Work before the downs: the first signal cancels its statement, and the run stops there (exit 4, nothing changed). */
async function beforeChange<T>(setup: RunSetup, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    // a statement the signal cancelled failed because of the signal
    stopIfSignalled(setup);
    throw error;
  }
}

/** A rollback lands on the revision it names: a snapshot taken at another would land elsewhere, even above it. */
function landingOf(manifest: Manifest, target: string | null): PreflightCheck {
  const at = manifest.revision ?? 'the start';
  if (manifest.revision === target) return { name: 'restore-from-revision', ok: true, message: `snapshot ${manifest.id} was taken at ${at}` };
  return {
    name: 'restore-from-revision',
    ok: false,
    message: `snapshot ${manifest.id} was taken at ${at}, not at ${target ?? 'the start'} (--to)`,
    hint: `Pick a snapshot taken at ${target ?? 'the start'} (\`belay backups list\` shows each one's revision), or restore this one where it lands: belay restore ${manifest.id}.`,
  };
}

async function checkRestoreSource(setup: RunSetup, session: RunSession, manifest: Manifest): Promise<PreflightCheck> {
  if (manifest.database !== setup.target.database) {
    return { name: 'restore-from', ok: false, message: `snapshot ${manifest.id} is of database ${manifest.database}, not ${setup.target.database}`, hint: 'Pick a snapshot of this database: `belay backups list`.' };
  }
  const tools = await runBackupTools(setup, session.control).catch(() => undefined);
  // the tools' own check (restorePreflight) says what is missing
  if (!tools) return { name: 'restore-from', ok: false, message: `snapshot ${manifest.id} cannot be verified without a pg_restore for this server` };
  const verdict = await verifySnapshot(manifest, tools, setup.env);
  return verdict.ok
    ? { name: 'restore-from', ok: true, message: `snapshot ${manifest.id} verified (sha256 and pg_restore --list)` }
    : { name: 'restore-from', ok: false, message: `snapshot ${manifest.id} failed verification: ${verdict.problems.join('; ')}`, hint: 'It may be damaged or tampered with; pick another (`belay backups list`).' };
}
