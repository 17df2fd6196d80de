import type { ClientBase } from 'pg';
import type { Manifest } from '../../backup/manifest.js';
import { quoteIdent } from '../../db/ident.js';
import { BelayError, errorMessage } from '../../errors.js';
import type { RestoreReport, RestoreStrategy } from '../../events/run-events.js';
import type { Fingerprint } from '../../integrity/fingerprint.js';
import type { IntegrityReport } from '../../integrity/check-integrity.js';
import type { StructureBaseline } from '../../integrity/structural.js';
import { RevisionFailedError } from '../../migrations/revision-error.js';
import type { Revision } from '../../migrations/revision.js';
import type { RunResult } from '../result/results.js';
import { finishRun, lockLostVerdict, type Verdict } from '../session/outcome.js';
import type { RunSession } from '../session/run-session.js';
import { runHealthStep } from '../steps/health-step.js';
import { hookFailed, runHookStep, type FailedHook } from '../steps/hook-step.js';
import { runEngine } from '../steps/run-engine.js';
import { runIntegrityStep } from '../steps/integrity-step.js';
import { restoreDatabase } from '../steps/restore-step.js';
import { checkLanding, landingFromRecord, prepareLanding, recordLanding, type Landing, type RecordedLanding } from './landing-check.js';

/**
 * The one recovery path: down → verify → restore. `migrate up` takes it when
 * its change is rejected, `rollback --to` to do its work, `recover` to settle
 * an interrupted run, `restore` (and `--restore-from`) for the restore alone.
 * What success means depends on why it was taken.
 */
export type RecoveryGoal =
  /** migrate up's change was rejected: back at the prior revision is exit 10 */
  | 'reject'
  /** rollback --to: the downs are what was asked, exit 0 */
  | 'rollback'
  /** recover: an interrupted run settled, exit 10 (or 11 when restored) */
  | 'settle'
  /** restore / --restore-from: the restore is what was asked, exit 0 */
  | 'restore';

export interface Recovery {
  session: RunSession;
  goal: RecoveryGoal;
  /** Revisions to revert, newest first. */
  toRevert: Revision[];
  /** Where the downs lead. */
  target: string | null;
  /** The pre-run fingerprint integrity is checked against (and a restore verified by). */
  fingerprint: Fingerprint | null;
  snapshot: Manifest | null;
  /** Whole rows (a forward run undone), or the columns that survive (rollback --to). */
  compare: 'same-schema' | 'common-columns';
  healthTimeoutSeconds: number;
  /** Checks that already failed at the baseline (--allow-unhealthy): not held against the rollback. */
  tolerated: ReadonlySet<string>;
  /** The structure before the run: what the change broke is judged against it, not what it made on purpose. */
  structure?: StructureBaseline;
  restoreStrategy: RestoreStrategy;
  /** A touched snapshot's scope guard: each down is checked before it commits, as the ups were. */
  beforeCommit?: (client: ClientBase) => Promise<void>;
  /** recover finishing a rollback: the schema baseline the rollback journaled before its first down. */
  landing?: RecordedLanding;
  /** The revision that failed: when its connection was lost, its commit may have landed unanswered, and belay.migrations says. */
  failed?: Revision;
}

export interface FailureReason {
  message: string;
  failure?: Record<string, unknown>;
  /** A non-transactional revision failed halfway: its down cannot be trusted; restore instead. */
  untrustworthy: boolean;
  /** What to do next, when the reason itself says (a revision stopped outside a touched snapshot's scope). */
  hint?: string;
}

export function reasonFrom(error: unknown): FailureReason {
  if (error instanceof RevisionFailedError) {
    const { next } = error.failure;
    return { message: error.message, failure: { ...error.failure }, untrustworthy: !error.failure.transactional, ...(next ? { hint: next } : {}) };
  }
  return { message: errorMessage(error), untrustworthy: false };
}

const at = (revision: string | null): string => revision ?? 'the start';

/**
 * The verdict with the hooks that failed on the way named in its message and
 * next. A rollback or restore otherwise done (exit 0) ends 12: 0 says all it
 * was configured to do was done, and a step was not (left for the operator to
 * do by hand). A run sent down this path already ends 10 or 11 by the
 * database's state, and keeps it.
 */
function withHooks(recovery: Recovery, verdict: Verdict, hooks: readonly FailedHook[]): Verdict {
  const { session } = recovery;
  if (hooks.length === 0) return verdict;
  const todo = hooks
    .map((h) => `The ${h.name} hook failed (${h.ended}); its output is in the journal (\`belay history ${session.runId}\`): do by hand what it was to do (\`${session.setup.config.hooks[h.name]?.run}\`).`)
    .join('\n');
  return {
    ...verdict,
    outcome: verdict.outcome === 'ok' && (recovery.goal === 'rollback' || recovery.goal === 'restore') ? 'manual-action-needed' : verdict.outcome,
    message: `${verdict.message}; ${hooks.map(hookFailed).join('; ')}`,
    hint: verdict.hint ? `${todo}\n${verdict.hint}` : todo,
  };
}

const damage = (report: IntegrityReport): string =>
  [...report.differences.map((d) => d.message), ...report.violations.map((v) => `invariant ${v.name} violated`), ...report.structural].join('; ');

/**
 * onRollback hook, the down of each revision (newest first), afterRollback
 * hook, health, then integrity against the pre-run fingerprint. Corruption,
 * or a down that fails, sends the run to its snapshot.
 */
export async function revertThenVerify(recovery: Recovery, reason: FailureReason): Promise<RunResult> {
  // no downs nor restore without the lock: another run may hold it now
  if (recovery.session.lockLost !== undefined) return finishRun(recovery.session, await lockLostVerdict(recovery.session));
  const hooks: FailedHook[] = [];
  try {
    return await revertThenVerifyOrThrow(recovery, reason, hooks);
  } catch (error) {
    const { lockLost } = recovery.session;
    const verdict: Verdict = {
      outcome: 'manual-action-needed',
      message: `${reason.message}; the rollback could not finish: ${errorMessage(error)}${lockLost === undefined ? '' : `; ${lockLost}`}`,
      // the lock gone with its session (a server stopped during the safety net): the run is recover's to settle
      hint:
        lockLost === undefined
          ? `The journal (\`belay history ${recovery.session.runId}\`) says which steps ended; \`belay status\` and \`belay verify\` show where the database stands now.`
          : 'When the server answers and the lock is free (`belay status` shows both), `belay recover` settles this run and verifies the data.',
      ...(reason.failure ? { failure: reason.failure } : {}),
    };
    return finishRun(recovery.session, withHooks(recovery, verdict, hooks));
  }
}

async function revertThenVerifyOrThrow(recovery: Recovery, given: FailureReason, hooks: FailedHook[]): Promise<RunResult> {
  const { session, target } = recovery;
  const { events } = session.setup;
  const finish = (verdict: Verdict): Promise<RunResult> => finishRun(session, withHooks(recovery, verdict, hooks));
  const current = session.ledger.facts.toRevision;
  await session.cancelSettled();
  // a server that ended the run's connections (a terminated backend, a restart) rolled back what they had not committed
  const lost = await session.replaceLostConnections();
  if (session.lockLost !== undefined) return finish(await lockLostVerdict(session));
  const reason = lost ? { ...given, message: `${given.message}; ${lost}` } : given;
  const landed = lost !== undefined && !reason.untrustworthy && recovery.failed !== undefined && (await isRecorded(session, recovery.failed.name));
  const toRevert = landed && recovery.failed ? [recovery.failed, ...recovery.toRevert] : recovery.toRevert;
  if (landed) await events.emit({ type: 'note', step: 'down', message: `${recovery.failed?.name} committed before its connection was lost (belay.migrations records it): reverted too` });
  await events.emit({ type: 'note', step: 'down', message: `rolling back to ${at(target)}: ${reason.message}` });
  const onRollback = await runHookStep(session, 'onRollback', { from: current, to: target, outcome: 'rolling-back' });
  if (onRollback) hooks.push(onRollback);
  if (reason.untrustworthy) {
    const revision = typeof reason.failure?.revision === 'string' ? reason.failure.revision : 'it';
    return restoreThenVerify(recovery, `${reason.message}; a revision that runs outside a transaction failed halfway: ${revision} may be partly applied, which its down cannot undo`, reason.failure, hooks, { next: reason.hint });
  }
  // every rollback must land on the schema its target left: a down that forgets what its up made leaves the data intact
  const landsOnTarget = recovery.goal === 'rollback' || (recovery.goal === 'settle' && recovery.compare === 'common-columns');
  const landingBaseline = recovery.landing
    ? landingFromRecord(recovery.landing)
    : landsOnTarget || toRevert.length > 0
      ? await prepareLanding(session.work.client, target, toRevert)
      : undefined;
  if (landingBaseline && !recovery.landing) {
    // on disk before the first down: a recover that finishes these downs (this one's too, when it is stopped) compares with all of it
    await events.emit({
      type: 'note',
      step: 'schema',
      message: `${landingBaseline.before.size} object(s) as they stand before the downs, journaled for a recover that would finish them`,
      detail: { landing: recordLanding(landingBaseline) },
    });
  }
  let engine = runEngine(session, toRevert, 'down', recovery.beforeCommit);
  const cutOff = new Set<string>();
  for (let index = 0; index < toRevert.length; index++) {
    const revision = toRevert[index]!;
    const now = toRevert[index + 1]?.name ?? target;
    try {
      await events.step({ step: 'down', revision: revision.name }, () => engine.down(revision.name), () => ({ now }));
    } catch (error) {
      // the lock went with the control session (a server stopped or restarted under the down): no restore now,
      // which could run beside another run; the down cut off committed nothing, or its COMMIT landed, and
      // `belay recover` reads which from belay.migrations and finishes the downs
      const lost = await session.replaceLostConnections().catch(() => undefined);
      if (session.lockLost !== undefined) return finish(await lockLostVerdict(session));
      // the work connection alone was lost under a down in a transaction: the server rolled it back, or its
      // COMMIT landed unanswered; on the new connection it runs again (once), or the downs go on past it
      if (lost !== undefined && !cutOff.has(revision.name) && error instanceof RevisionFailedError && error.failure.transactional) {
        cutOff.add(revision.name);
        engine = runEngine(session, toRevert, 'down', recovery.beforeCommit);
        if (await isRecorded(session, revision.name)) {
          await events.emit({ type: 'note', step: 'down', revision: revision.name, message: `the down of ${revision.name} was cut off with its connection (${lost}): it committed nothing, and runs again` });
          index -= 1;
        } else {
          await events.emit({ type: 'note', step: 'down', revision: revision.name, message: `the down of ${revision.name} committed before its connection was lost (belay.migrations no longer records it; ${lost})` });
          await events.step({ step: 'down', revision: revision.name }, async () => undefined, () => ({ now }));
        }
        continue;
      }
      return restoreThenVerify(recovery, `${reason.message}; the down of ${revision.name} failed: ${errorMessage(error)}`, reason.failure, hooks, { failedDown: { revision: revision.name, error } });
    }
  }
  const afterRollback = await runHookStep(session, 'afterRollback', { from: current, to: target, outcome: 'rolled-back' });
  if (afterRollback) hooks.push(afterRollback);
  const health = await runHealthStep(session, 'after-rollback', recovery.healthTimeoutSeconds, recovery.tolerated, recovery.structure);
  const integrity = await runIntegrityStep(session, recovery.fingerprint, recovery.compare, session.work.client, recovery.structure);
  if (!integrity.intact) {
    return restoreThenVerify(recovery, `${reason.message}; data changed after the rollback: ${damage(integrity)}`, reason.failure, hooks);
  }
  const landing = landingBaseline ? await checkLanding(session, landingBaseline) : undefined;
  for (const warning of landing?.warnings ?? []) await events.emit({ type: 'note', step: 'schema', message: `warning: ${warning}` });
  const failure = reason.failure ? { failure: reason.failure } : {};
  const uncompared = notCompared(recovery, integrity);
  if (landing?.differs) return finish(landedElsewhere(recovery, reason, landing, !health.healthy, uncompared));
  if (!health.healthy) {
    return finish({
      outcome: 'manual-action-needed',
      message: `${reason.message}; rolled back to ${at(target)} with ${uncompared ?? 'data verified'}, but health checks still fail`,
      hint: `The database is back at ${at(target)}${uncompared ? '' : ' with its data verified'}: check the application (\`belay verify\` runs the checks again).`,
      ...failure,
    });
  }
  // a forward run undone says only a schema that differs or was not compared: "data verified intact" stays its word
  const schemaNote =
    landing === undefined || (!landsOnTarget && landing.compared)
      ? ''
      : landing.compared
        ? `; schema as recorded at ${at(target)}${recovery.goal === 'settle' && !recovery.landing ? ' (compared for the revisions this run reverted)' : ''}${landing.warnings.map((w) => `; warning: ${w}`).join('')}`
        : `; schema not compared (${landing.notCompared ?? 'no record'})`;
  // healthy here can still leave checks failing that failed before the run too (an index already invalid): named, never called healthy
  const stillFailing = health.results.filter((r) => !r.ok).map((r) => r.name);
  const healthNote = stillFailing.length === 0 ? 'healthy' : `not healthy: ${stillFailing.join(', ')} still fail${stillFailing.length === 1 ? 's' : ''} (failing before the rollback too)`;
  if (recovery.goal === 'rollback') return finish({ outcome: 'ok', message: `rolled back to ${at(target)}; ${healthNote}, ${uncompared ?? 'data verified'}${schemaNote}`, ...failure });
  if (recovery.goal === 'settle' && toRevert.length === 0) {
    const data = uncompared ? `at ${at(target)}; ${uncompared}` : `data verified intact at ${at(target)}`;
    return finish({ outcome: 'ok', message: `${reason.message}; nothing to revert, ${data}${schemaNote}`, ...failure });
  }
  const why = recovery.goal === 'reject' ? `change rejected (${reason.message})` : reason.message;
  const next =
    recovery.goal === 'reject'
      ? `Fix what was rejected (\`belay history ${session.runId}\` shows every step), then run \`belay migrate up\` again.`
      : `The interrupted run is settled at ${at(target)}; run \`belay migrate up\` again when ready.`;
  return finish({ outcome: 'rolled-back', message: `${why}; rolled back to ${at(target)}, ${uncompared ?? 'data verified intact'}${schemaNote}`, hint: reason.hint ?? next, ...failure });
}

async function isRecorded(session: RunSession, revision: string): Promise<boolean> {
  const { rowCount } = await session.work.client.query('SELECT 1 FROM belay.migrations WHERE name = $1', [revision]);
  return rowCount === 1;
}

/**
 * What the integrity step did not do, in words, when the data was not
 * compared with a fingerprint; undefined when it was ("data verified").
 * Under integrity.mode off nothing was checked, under invariants only the
 * invariants and the structure were, and under strict a run with no
 * fingerprint (a killed run whose fingerprint never ended) says so, as
 * does one whose large objects the role may not read, or with columns whose
 * values do not cast back to the type they had.
 */
function notCompared(recovery: Recovery, integrity: IntegrityReport): string | undefined {
  if (integrity.mode === 'off') return 'data not checked (integrity.mode is off)';
  if (integrity.mode === 'invariants') return `data not compared (integrity.mode is invariants: ${integrity.checked} hold)`;
  if (integrity.noTableSelected) return `data not compared: ${integrity.noTableSelected}`;
  if (!recovery.fingerprint) {
    const whose = recovery.goal === 'settle' ? "the run's fingerprint was never taken" : 'no fingerprint was taken';
    return `data not compared: ${whose} (checked ${integrity.checked})`;
  }
  const { columnsNotCompared: columns, largeObjectsNotCompared: largeObjects } = integrity;
  if (columns) return `tables verified intact but for ${columns}${largeObjects ? `; ${largeObjects}` : ''}`;
  if (largeObjects) return `tables verified intact, ${largeObjects}`;
  return undefined;
}

/**
 * The downs ran and the data is intact, but the schema is not the one the
 * target left (a down forgot a function, a table, an extension; a detached
 * partition not attached again). Not restored on purpose: the snapshot
 * (taken before the downs of a rollback --to, before the ups of a forward
 * run) throws away what the application wrote since, and a rollback --to's
 * undoes the whole rollback, for objects that are named here and usually
 * fixed with one statement. The operator decides; the run does not claim
 * success.
 */
function landedElsewhere(recovery: Recovery, reason: FailureReason, landing: Landing, unhealthy: boolean, uncompared: string | undefined): Verdict {
  const where = at(recovery.target);
  const again = recovery.goal === 'settle' ? ', then run `belay recover` again to settle the run' : recovery.goal === 'reject' ? ', then run `belay migrate up` again' : '';
  const before = recovery.compare === 'same-schema' ? `the state the run started from (at ${where})` : `the state before the rollback (at ${recovery.session.ledger.facts.fromRevision ?? 'the start'})`;
  const back = recovery.snapshot ? `\nOr put back ${before}: belay restore ${recovery.snapshot.id}` : '';
  const why = recovery.goal === 'reject' ? `change rejected (${reason.message})` : reason.message;
  return {
    outcome: 'manual-action-needed',
    message: `${why}; the downs ran and ${uncompared ?? 'the data is verified'}${unhealthy ? ' (health checks fail)' : ''}, but the schema is not the one ${where} left: ${landing.count} object(s) differ (+ left behind, - missing, ~ changed): ${landing.differences}`,
    hint: `Bring these objects in line by hand (DROP what is left, re-create what is missing) and fix the downs that missed them${again}; \`belay history ${recovery.session.runId}\` shows the run.${back}`,
    ...(reason.failure ? { failure: reason.failure } : {}),
  };
}

/** How the next run of a command that had no snapshot to restore takes one. */
const NEXT_TIME: Record<RecoveryGoal, string> = {
  reject: 'Next time run migrate up with --with-backup.',
  rollback: 'Next time leave out --no-backup.',
  settle: 'Next time run migrate up with --with-backup, and rollback without --no-backup.',
  restore: '',
};

/** What a restore that threw (rather than reporting) leaves: the run still ends with what to run. */
function thrownRestore(recovery: Recovery, manifest: Manifest, error: unknown): RestoreReport {
  const database = recovery.session.setup.target.database;
  return {
    ok: false,
    strategy: recovery.restoreStrategy,
    quarantine: null,
    quarantineSnapshot: null,
    message: `restoring ${manifest.id} stopped: ${errorMessage(error)}; ${database} may be as before the restore or partly restored`,
    manualSteps: [`belay backups verify ${manifest.id}`, `belay restore ${manifest.id}${recovery.restoreStrategy === 'in-place' ? ' --strategy in-place' : ''}`],
  };
}

/**
 * recover, for a run killed once its restore had put the snapshot in place:
 * finish what that restore was doing, verifying the data against the
 * fingerprint. Restored again only when it does not match.
 */
export async function checkRestored(recovery: Recovery, why: string): Promise<RunResult> {
  const { session } = recovery;
  const integrity = await runIntegrityStep(session, recovery.fingerprint, 'same-schema');
  if (!integrity.intact) {
    // the snapshot was put in place whole (one pg_restore transaction, or a verified copy renamed in): what differs
    // was written since, which a second restore would throw away
    return finishRun(session, {
      outcome: 'manual-action-needed',
      message: `${why}; but the data does not match it now: ${damage(integrity)} (written since the restore, most likely: belay did not restore it again)`,
      hint: `Check what changed since the restore${recovery.snapshot ? `; to put the snapshot back all the same: belay restore ${recovery.snapshot.id}` : ''}. What the restore replaced is kept as named above.`,
    });
  }
  const uncompared = notCompared(recovery, integrity);
  // this run restored nothing: the restore is the interrupted run's, and its "restored" is in its record
  return finishRun(session, {
    outcome: 'ok',
    message: `${why}; ${uncompared ?? 'the restored data verified intact'} at ${at(recovery.target)}`,
    hint: 'The interrupted run is settled. What its restore replaced is kept as named above: drop the database, or prune the snapshot, once you have checked it.',
  });
}

/**
 * What to run when a down failed and the run's touched snapshot could not be put back: its tables go back only at
 * its revision, which the failed down left the database above. `belay rollback --to` alone would run that down on
 * the same data again (and put its own snapshot back), and an applied revision's down may not be edited (drift):
 * the data must change so that the down succeeds. The touched snapshot is named when the rollback lands on its revision.
 */
function failedDownSteps(target: string | null, snapshot: Manifest, down: { revision: string; error: unknown }): string[] {
  const failed = down.error instanceof RevisionFailedError ? down.error.failure : undefined;
  const why = failed ? `${failed.file}${failed.line === undefined ? '' : `:${failed.line}`}: ${failed.message}` : errorMessage(down.error);
  const tables = snapshot.scope?.tables.filter((t) => t.kind === 'table').map((t) => `${t.schema}.${t.name}`).join(', ');
  const restore = snapshot.revision === target ? `, then \`belay restore ${snapshot.id}\` to put back the rows of ${tables} as they were before this run` : '';
  return [
    `The down of ${down.revision} fails on this data (${why}): \`belay rollback --to\` would run it again. Change the data so that it succeeds (not the down's file: an applied revision's files must not change), then run \`belay rollback --to ${target ?? '0'}\` (its own snapshot guards it)${restore}.`,
    'Or restore a full backup of your own.',
  ];
}

/**
 * Restore the snapshot and verify it against the fingerprint; never throws for a restore that did not work. `next`:
 * what the failure itself says to do, told first; `failedDown`: the down whose failure sent the run here.
 */
export async function restoreThenVerify(
  recovery: Recovery,
  why: string,
  failure?: Record<string, unknown>,
  hooks: FailedHook[] = [],
  { next, failedDown }: { next?: string; failedDown?: { revision: string; error: unknown } } = {},
): Promise<RunResult> {
  const { session, snapshot } = recovery;
  const { events } = session.setup;
  const finish = (verdict: Verdict): Promise<RunResult> =>
    finishRun(session, withHooks(recovery, next ? { ...verdict, hint: verdict.hint ? `${next}\n${verdict.hint}` : next } : verdict, hooks));
  const failed = failure ? { failure } : {};
  if (!snapshot) {
    return finish({
      outcome: 'manual-action-needed',
      message: `${why}; but no snapshot was taken to restore (the run had no --with-backup, or rollback --no-backup)`,
      hint: `The database is at ${at(session.ledger.facts.toRevision)} and may be damaged. Restore an earlier belay snapshot (\`belay backups list\`, then \`belay restore ID\`${recovery.goal === 'settle' ? ': once it is verified, the interrupted run is settled' : ''}), or your own backup.${NEXT_TIME[recovery.goal] ? ` ${NEXT_TIME[recovery.goal]}` : ''}`,
      ...failed,
    });
  }
  await events.emit({ type: 'note', step: 'restore', message: why });
  let tablesDone = 0;
  const ref = { id: snapshot.id, path: snapshot.path, sha256: snapshot.sha256, sizeBytes: snapshot.sizeBytes };
  const report = await events.judged(
    { step: 'restore', subject: snapshot.id },
    async () => {
      // the restore's start in the database's copy of the journal before anything is replaced: a copy that
      // lacks it was put back from a snapshot (openRestore), not merely behind the file when belay was killed
      await session.journal?.sync();
      return restoreDatabase({
        setup: session.setup,
        runId: session.runId,
        manifest: snapshot,
        baseline: recovery.fingerprint,
        strategy: recovery.restoreStrategy,
        closeTargetSessions: () => session.disconnect(),
        progress: (message, detail) => events.emit({ type: 'note', step: 'restore', message, ...(detail ? { detail } : {}) }),
        onTable: (table) => {
          tablesDone++;
          void events.emit({
            type: 'progress',
            step: 'restore',
            message: `${tablesDone}/${snapshot.tableCount} tables (${table})`,
            detail: { table, tablesDone, tablesTotal: snapshot.tableCount },
          });
        },
      }).catch((error: unknown) => thrownRestore(recovery, snapshot, error));
    },
    (o) => ({ ok: o.ok, detail: { ...o, snapshot: ref, revision: snapshot.revision } }),
    { snapshot: ref, strategy: recovery.restoreStrategy },
  );
  let reconnectFailed = '';
  try {
    await session.reconnect();
  } catch (error) {
    reconnectFailed = `; could not connect again after it: ${errorMessage(error)}`;
  }
  // recover's restore that a signal stopped before it (or anything before it) changed the database leaves the run to settle
  const settleAgain = recovery.goal === 'settle' && session.setup.signal?.aborted === true && session.ledger.facts.revisions.every((r) => r.status === 'pending' || r.status === 'not-run');
  if (!report.ok && report.untouched && (recovery.goal === 'restore' || settleAgain)) {
    // a restore asked for that changed nothing is refused, not a database left needing manual action
    const hint = settleAgain ? 'Run `belay recover` again when you are ready: the interrupted run is still to settle.' : report.manualSteps.join('\n');
    throw new BelayError('preflight', `${why}; ${report.message}${reconnectFailed}`, { hint });
  }
  if (!report.ok) {
    const aboveSnapshot = failedDown !== undefined && snapshot.scope !== undefined && snapshot.revision !== failedDown.revision;
    return finish({
      outcome: 'manual-action-needed',
      message: `${why}; ${report.message}${reconnectFailed}`,
      hint: (aboveSnapshot ? failedDownSteps(recovery.target, snapshot, failedDown) : report.manualSteps).join('\n'),
      ...failed,
    });
  }
  const afterRestore = await runHookStep(session, 'afterRestore', { from: recovery.target, to: snapshot.revision, outcome: 'restored' });
  if (afterRestore) hooks.push(afterRestore);
  const kept = report.quarantine
    ? `The damaged database is kept as ${report.quarantine} (connect to it by that name); drop it yourself when done.`
    : report.quarantineSnapshot
      ? `The damaged state is kept as snapshot ${report.quarantineSnapshot}; \`belay backups prune\` removes it with the other old snapshots.`
      : report.quarantineSchema
        ? `The damaged tables and what the run created are kept in schema ${report.quarantineSchema}; drop it yourself when done: DROP SCHEMA ${quoteIdent(report.quarantineSchema)} CASCADE;`
        : undefined;
  // what failed before the restore says nothing of the database it put back: the checks run again on it, on a
  // restore asked for too (exit 0 is "done and healthy": a snapshot older than what the application needs is told)
  const health = reconnectFailed ? undefined : await runHealthStep(session, 'after-restore', recovery.healthTimeoutSeconds, recovery.tolerated, recovery.structure);
  const stillFailing = health?.results.filter((r) => !r.ok).map((r) => r.name) ?? [];
  if (health && !health.healthy) {
    return finish({
      outcome: 'manual-action-needed',
      message: `${why}; ${report.message}; but health checks still fail on the restored database: ${stillFailing.join(', ')}`,
      hint: `The snapshot is back in place (at ${at(snapshot.revision)}): check the application (\`belay verify\` runs the checks again).${kept ? `\n${kept}` : ''}`,
      ...failed,
    });
  }
  const healthNote = stillFailing.length === 0 ? '' : `; not healthy: ${stillFailing.join(', ')} still fail${stillFailing.length === 1 ? 's' : ''} (failing before the run too)`;
  return finish({
    outcome: recovery.goal === 'restore' ? 'ok' : 'restored',
    message: `${why}; ${report.message}${reconnectFailed}${healthNote}`,
    ...(kept ? { hint: kept } : {}),
    ...failed,
  });
}
