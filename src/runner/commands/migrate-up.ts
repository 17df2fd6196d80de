import { discoverRevisions } from '../../migrations/discover.js';
import type { Revision } from '../../migrations/revision.js';
import { resolveRevisionName } from '../../migrations/resolve-name.js';
import { BelayError, EXIT } from '../../errors.js';
import { captureStructure, type StructureBaseline } from '../../integrity/structural.js';
import { readDatabaseState, revisionsToApply, type DatabaseState } from '../session/database-state.js';
import { runHealthStep } from '../steps/health-step.js';
import { hookFailed, runHookStep } from '../steps/hook-step.js';
import { runEngine } from '../steps/run-engine.js';
import { finishRun, resultOf, withRunSession, type Verdict } from '../session/outcome.js';
import { assertPreflight, checkDrift, checkMissing, checkOrder, checkRevisionsToApply, checkSearchPath, type PreflightCheck } from '../steps/preflight.js';
import type { RunResult } from '../result/results.js';
import type { RunSession } from '../session/run-session.js';
import { checkUnsettledUnlocked } from '../session/run-lock.js';
import { reasonFrom, revertThenVerify, type FailureReason, type Recovery } from '../recovery/safety-net.js';
import type { RunSetup } from '../session/setup.js';
import { backupPreflight, chooseBackupScope, endAfterDumpFailure, fingerprintAndSnapshot, stopIfSignalled, type FingerprintAndSnapshot } from '../steps/snapshot-step.js';
import type { BackupScopeMode, ScopeDecision } from '../../scope/choose-scope.js';
import type { ScopeChoice } from '../../events/run-events.js';

export interface MigrateUpOptions {
  to?: string;
  withBackup?: boolean;
  dryRun?: boolean;
  allowIrreversible?: boolean;
  allowUnhealthy?: boolean;
  /** Seconds health checks may retry after the change; default from the config. */
  healthTimeout?: number;
  /** Which snapshot --with-backup takes; default backup.scope, else auto. */
  backupScope?: BackupScopeMode;
}


async function preflightChecks(session: RunSession, state: DatabaseState, toApply: Revision[], options: MigrateUpOptions): Promise<PreflightCheck[]> {
  const checks = [
    checkDrift(state),
    checkMissing(state),
    checkOrder(state),
    ...(await checkRevisionsToApply(toApply, options.allowIrreversible === true)),
    await checkSearchPath(session.work.client),
  ];
  if (options.withBackup && toApply.length > 0) checks.push(...(await backupPreflight(session.setup, session.control)));
  return checks;
}

/**
 * The seed's "fix the 500 first": the checks must pass before anything
 * changes. With --allow-unhealthy the run goes on, and the checks failing
 * now are the ones not held against the change.
 */
async function healthBaseline(session: RunSession, options: MigrateUpOptions, tolerated: Set<string>): Promise<PreflightCheck> {
  const report = await runHealthStep(session, 'baseline', 0);
  if (report.healthy) return { name: 'health-baseline', ok: true, message: 'health checks pass before the change' };
  const failing = report.results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.evidence}`).join('; ');
  if (options.allowUnhealthy) {
    // structure is judged against the baseline itself: what was already broken is not held against the change, what breaks is
    for (const result of report.results) if (!result.ok && result.kind !== 'structural') tolerated.add(result.name);
    return { name: 'health-baseline', ok: true, message: `unhealthy before the change, allowed by --allow-unhealthy (${failing})` };
  }
  return {
    name: 'health-baseline',
    ok: false,
    message: `unhealthy before any change: ${failing}`,
    hint: 'Fix what fails first, so that a failure after the change can be blamed on the change; or pass --allow-unhealthy.',
  };
}

/** Nothing to apply; a --to the database is already past is said, with the command that goes down to it. */
function upToDate(current: string | null, target: string | undefined, revisions: readonly Revision[]): Verdict {
  const message = `already at ${current ?? 'the start'}; nothing to apply`;
  const order = (name: string | null | undefined): number => revisions.findIndex((r) => r.name === name);
  if (target === undefined || current === null || order(target) >= order(current)) return { outcome: 'up-to-date', message };
  return {
    outcome: 'up-to-date',
    message: `already at ${current}, past --to ${target}; nothing to apply`,
    hint: `migrate up never goes down: \`belay plan --to ${target}\` shows what reverting to it does, \`belay rollback --to ${target}\` does it.`,
  };
}

/**
 * The orchestrated forward run: lock → plan → preflight (with the health
 * baseline) → fingerprint → backup → beforeApply → apply → afterApply →
 * health; on any failure the safety net rolls back or restores. Usage, lock
 * and preflight problems throw BelayError before anything changes.
 */
export async function runMigrateUp(setup: RunSetup, options: MigrateUpOptions): Promise<RunResult> {
  const revisions = await discoverRevisions(setup.config.migrationsDir);
  const target = options.to === undefined ? undefined : resolveRevisionName(options.to, revisions.map((r) => r.name));
  return withRunSession(setup, options.dryRun ? 'migrate-up-dry-run' : 'migrate-up', async (session) => {
    if (options.dryRun) return await dryRun(session, revisions, target, options);
    await session.lock();
    const state = await readDatabaseState(session.work.client, revisions);
    const toApply = revisionsToApply(revisions, state, target);
    await session.startJournal(state.current, toApply[toApply.length - 1]?.name ?? state.current);
    const { events } = setup;
    const planned = toApply[toApply.length - 1]?.name ?? state.current;
    await events.step({ step: 'plan' }, async () => toApply, (list) => ({ from: state.current, to: planned, apply: list.map((r) => r.name) }));
    const tolerated = new Set<string>();
    let structure: StructureBaseline | undefined;
    let scope: { decision: ScopeDecision; choice: ScopeChoice } | undefined;
    await events.step(
      { step: 'preflight' },
      async () => {
        try {
          const found = await preflightChecks(session, state, toApply, options);
          assertPreflight(found);
          if (toApply.length > 0) {
            structure = await captureStructure(session.work.client);
            found.push(await healthBaseline(session, options, tolerated));
          }
          assertPreflight(found);
          if (options.withBackup && toApply.length > 0) scope = await chooseBackupScope(session, options.backupScope, toApply, 'up');
          stopIfSignalled(setup);
          return found;
        } catch (error) {
          // a statement the signal cancelled failed because of the signal
          stopIfSignalled(setup);
          throw error;
        }
      },
      (found) => ({ checks: found, ...(scope ? { scope: scope.choice } : {}) }),
    );
    if (toApply.length === 0) {
      return await finishRun(session, upToDate(state.current, target, revisions));
    }
    await session.attachDatabaseJournal();
    let taken: FingerprintAndSnapshot;
    try {
      taken = await fingerprintAndSnapshot(session, state.current, { sums: { perColumn: false }, dump: options.withBackup === true, scope: scope?.decision });
    } catch (error) {
      return await endAfterDumpFailure(session, error);
    }
    const { fingerprint, snapshot, dumpError, guard } = taken;
    if (dumpError !== undefined) return await endAfterDumpFailure(session, dumpError);
    stopIfSignalled(setup);
    const recovery: Recovery = {
      session,
      goal: 'reject',
      toRevert: [],
      target: state.current,
      fingerprint,
      snapshot,
      compare: 'same-schema',
      healthTimeoutSeconds: options.healthTimeout ?? setup.config.health.timeoutSeconds,
      tolerated,
      structure,
      restoreStrategy: 'swap',
      ...(guard ? { beforeCommit: guard.check.bind(guard) } : {}),
    };
    return await applyAndVerify(recovery, toApply);
  });
}

/**
 * Why the run stops at its next safe point and rolls back: SIGINT/SIGTERM
 * (the CLI aborts the signal), or a journal file it can no longer write. Or
 * why it stops without rolling back: its lock is gone (revertThenVerify).
 */
function stopReason(session: RunSession): FailureReason | undefined {
  if (session.lockLost !== undefined) return { message: session.lockLost, untrustworthy: false };
  if (session.setup.signal?.aborted) return { message: 'interrupted by a signal', untrustworthy: false };
  const lost = session.journal?.fileFailure;
  return lost ? { message: lost.message, untrustworthy: false, ...(lost.hint ? { hint: lost.hint } : {}) } : undefined;
}

const RERUN_FULL = 'Nothing outside the touched snapshot changed. Rerun with `--backup-scope full`: a full snapshot covers every table.';

/** The touched snapshot's guard refused a commit (src/scope/lock-scope.ts). */
const outsideScope = (error: unknown): boolean =>
  error instanceof Error && error.cause instanceof BelayError && Array.isArray(error.cause.details.outsideScope);

/** Apply each revision; on any failure, the one recovery path with the revisions this run committed. */
async function applyAndVerify(recovery: Recovery, toApply: Revision[]): Promise<RunResult> {
  const { session } = recovery;
  const { events } = session.setup;
  const applied: Revision[] = [];
  let failing: Revision | undefined;
  const rejected = (reason: FailureReason): Promise<RunResult> => revertThenVerify({ ...recovery, toRevert: [...applied].reverse(), ...(failing ? { failed: failing } : {}) }, reason);
  const hookVars = (outcome: string) => ({ from: recovery.target, to: toApply[toApply.length - 1]!.name, outcome });
  const beforeApply = await runHookStep(session, 'beforeApply', hookVars('applying'));
  // a hook the signal ended failed because of the signal: the run says why it stopped
  if (beforeApply) return rejected(stopReason(session) ?? { message: hookFailed(beforeApply), untrustworthy: false });
  const engine = runEngine(session, toApply, 'apply', recovery.beforeCommit);
  // each revision's up sends the next one behind its commit; a run that stops first rolls that one back (settle)
  const stopping = (): boolean => stopReason(session) !== undefined;
  let failed: FailureReason | undefined;
  for (const [index, revision] of toApply.entries()) {
    failed = stopReason(session);
    if (failed) break;
    const next = toApply[index + 1];
    try {
      await events.step({ step: 'apply', revision: revision.name }, () => engine.up(revision.name, next && { next: next.name, stopping }), () => ({ now: revision.name }));
    } catch (error) {
      failing = revision;
      const reason = reasonFrom(error);
      const stop = stopReason(session);
      // a revision the signal cancelled still failed where it says (file, line, SQLSTATE 57014); one outside a
      // transaction may have run part of its statements, as when it fails on its own: its down cannot be trusted
      failed = stop
        ? { ...stop, untrustworthy: reason.untrustworthy, ...(reason.failure ? { failure: reason.failure } : {}) }
        : { ...reason, ...(outsideScope(error) ? { hint: RERUN_FULL } : {}) };
      break;
    }
    applied.push(revision);
  }
  await engine.settle();
  failed ??= stopReason(session);
  if (failed) return rejected(failed);
  const afterApply = await runHookStep(session, 'afterApply', hookVars('applied'));
  failed = stopReason(session);
  if (failed) return rejected(failed);
  if (afterApply) return rejected({ message: hookFailed(afterApply), untrustworthy: false });
  const health = await runHealthStep(session, 'after-apply', recovery.healthTimeoutSeconds, recovery.tolerated, recovery.structure);
  failed = stopReason(session);
  if (failed) return rejected(failed);
  if (!health.healthy) {
    const failing = health.results.filter((r) => !r.ok && !recovery.tolerated.has(r.name));
    return rejected({ message: `health failed after the change: ${failing.map((r) => `${r.name}: ${r.evidence}`).join('; ')}`, failure: { health: failing }, untrustworthy: false });
  }
  const now = toApply[toApply.length - 1]!.name;
  const stillFailing = health.results.filter((r) => !r.ok).map((r) => r.name);
  return finishRun(session, {
    outcome: 'ok',
    message:
      stillFailing.length === 0
        ? `applied ${toApply.length} revision(s); now at ${now}; healthy`
        : `applied ${toApply.length} revision(s); now at ${now}; not healthy: ${stillFailing.join(', ')} still fail${stillFailing.length === 1 ? 's' : ''} (failing before the change too, allowed by --allow-unhealthy)`,
  });
}

/** Plan and preflight, the health baseline included (its checks change nothing); refused as the run would be, exit 4. */
async function dryRun(session: RunSession, revisions: Revision[], target: string | undefined, options: MigrateUpOptions): Promise<RunResult> {
  const state = await readDatabaseState(session.work.client, revisions);
  const toApply = revisionsToApply(revisions, state, target);
  // what the real run refuses as soon as it holds the lock
  const checks = [...(await checkUnsettledUnlocked(session.control.client, session.setup.config.backupsDir)), ...(await preflightChecks(session, state, toApply, options))];
  assertPreflight(checks, 'dry run: preflight would refuse');
  if (toApply.length > 0) checks.push(await healthBaseline(session, options, new Set()));
  assertPreflight(checks, 'dry run: preflight would refuse');
  session.ledger.startAt(state.current);
  return {
    ...resultOf(session, {
      outcome: 'dry-run',
      exitCode: EXIT.ok,
      message: `dry run: would apply ${toApply.length} revision(s)${options.withBackup && toApply.length > 0 ? ' after a snapshot' : ''}; nothing was changed`,
    }),
    checks,
    toRevision: toApply[toApply.length - 1]?.name ?? state.current,
    revisions: toApply.map((revision) => ({ name: revision.name, status: 'pending' })),
  };
}
