import type { Manifest } from '../backup/manifest.js';
import { EXIT, errorMessage } from '../errors.js';
import type { Fingerprint } from '../integrity/fingerprint.js';
import type { StructureBaseline } from '../integrity/structural.js';
import { MigrationEngine } from '../migrations/engine.js';
import { RevisionFailedError } from '../migrations/revision-error.js';
import type { Revision } from '../migrations/revision.js';
import { runHealthStep } from './health-step.js';
import { runHookStep } from './hook-step.js';
import { runIntegrityStep } from './integrity-step.js';
import { finishRun } from './outcome.js';
import { restoreDatabase, type RestoreStrategy } from './restore-step.js';
import type { RunResult } from './results.js';
import type { RunSession } from './run-session.js';

/** What a changing run knows when something goes wrong. */
export interface RunProgress {
  session: RunSession;
  /** The revision before the run: where a rollback returns to. */
  priorRevision: string | null;
  fingerprint: Fingerprint | null;
  snapshot: Manifest | null;
  /** Revisions this run committed, in the order it applied them. */
  applied: Revision[];
  result: RunResult;
  healthTimeoutSeconds: number;
  /** Checks that already failed at the baseline (--allow-unhealthy): not held against the change or the rollback. */
  tolerated: ReadonlySet<string>;
  /** The structure before the run: what the change broke is judged against it, not what it made on purpose. */
  structure?: StructureBaseline;
  restoreStrategy: RestoreStrategy;
  /** The restore is what was asked for (`belay restore`, `rollback --restore-from`): success ends 0, not 11. */
  restoreIsGoal?: boolean;
}

export interface FailureReason {
  message: string;
  failure?: Record<string, unknown>;
  /** A non-transactional revision failed halfway: its downs cannot be trusted; restore instead. */
  untrustworthy: boolean;
  /** How integrity compares after the downs: whole rows (default), or the columns that survive (finishing a rollback). */
  compare?: 'same-schema' | 'common-columns';
}

export function reasonFrom(error: unknown): FailureReason {
  if (error instanceof RevisionFailedError) {
    return { message: error.message, failure: { ...error.failure }, untrustworthy: !error.failure.transactional };
  }
  return { message: errorMessage(error), untrustworthy: false };
}

function markReverted(result: RunResult, name: string): void {
  const entry = result.revisions.find((r) => r.name === name);
  if (entry) entry.status = 'reverted';
}

/**
 * The safety net: onRollback hook, the down of every revision this run
 * committed (newest first), afterRollback hook, health, then integrity
 * against the pre-run fingerprint. Corruption, or a down that fails, sends
 * the run to its snapshot.
 */
export async function rollBackRun(progress: RunProgress, reason: FailureReason): Promise<RunResult> {
  const { session, result } = progress;
  const { events } = session.setup;
  result.message = reason.message;
  if (reason.failure) result.failure = reason.failure;
  const current = progress.applied[progress.applied.length - 1]?.name ?? progress.priorRevision;
  await events.emit({ type: 'note', step: 'down', message: `rolling back to ${progress.priorRevision ?? 'the start'}: ${reason.message}` });
  await runHookStep(session, 'onRollback', { from: current, to: progress.priorRevision, outcome: 'rolling-back' });

  if (reason.untrustworthy) {
    return restoreRun(progress, `a revision that runs outside a transaction failed halfway; its effects cannot be undone by its down`);
  }
  const engine = new MigrationEngine(progress.applied, session.work.client, session.runId, {
    log: (revision, message) => void events.emit({ type: 'note', step: 'down', revision: revision.name, message }),
  });
  for (const revision of [...progress.applied].reverse()) {
    try {
      await events.step({ step: 'down', revision: revision.name }, () => engine.down(revision.name));
      markReverted(result, revision.name);
      result.toRevision = progress.applied[progress.applied.indexOf(revision) - 1]?.name ?? progress.priorRevision;
    } catch (error) {
      return restoreRun(progress, `the down of ${revision.name} failed: ${errorMessage(error)}`);
    }
  }
  result.toRevision = progress.priorRevision;
  const hookOk = await runHookStep(session, 'afterRollback', { from: current, to: progress.priorRevision, outcome: 'rolled-back' });
  const health = await runHealthStep(session, 'after-rollback', progress.healthTimeoutSeconds, progress.tolerated, progress.structure);
  const integrity = await runIntegrityStep(session, progress.fingerprint, reason.compare ?? 'same-schema', session.work.client, progress.structure);
  if (!integrity.intact) {
    return restoreRun(progress, `data changed after the rollback: ${integrity.differences.map((d) => d.message).concat(integrity.violations.map((v) => `invariant ${v.name} violated`), integrity.structural).join('; ')}`);
  }
  if (!health.healthy || !hookOk) {
    return finishRun(session, {
      ...result,
      outcome: 'manual-action-needed',
      exitCode: EXIT.manual,
      hint: `The database is back at ${progress.priorRevision ?? 'the start'} with its data verified, but ${hookOk ? 'health checks still fail' : 'the afterRollback hook failed'}: check the application (\`belay verify\` runs the checks again).`,
    });
  }
  return finishRun(session, {
    ...result,
    outcome: 'rolled-back',
    exitCode: EXIT.rolledBack,
    message: `change rejected (${reason.message}); rolled back to ${progress.priorRevision ?? 'the start'}, data verified intact`,
  });
}

/** Restore the run's snapshot and verify it against the pre-run fingerprint. */
export async function restoreRun(progress: RunProgress, why: string): Promise<RunResult> {
  const { session, result } = progress;
  const { events } = session.setup;
  const snapshot = progress.snapshot;
  if (!snapshot) {
    return finishRun(session, {
      ...result,
      outcome: 'manual-action-needed',
      exitCode: EXIT.manual,
      message: `${why}; this run took no snapshot to restore`,
      hint: `The database is at ${result.toRevision ?? 'the start'} and may be damaged. Restore your own backup, or an earlier belay snapshot (\`belay backups list\`, \`belay restore ID\`). Next time run with --with-backup.`,
    });
  }
  await events.emit({ type: 'note', step: 'restore', message: why });
  let tablesDone = 0;
  const outcome = await events.step(
    { step: 'restore', subject: snapshot.id },
    () =>
      restoreDatabase({
        setup: session.setup,
        runId: session.runId,
        manifest: snapshot,
        baseline: progress.fingerprint,
        strategy: progress.restoreStrategy,
        closeTargetSessions: () => session.disconnect(),
        progress: (message) => void events.emit({ type: 'note', step: 'restore', message }),
        onTable: (table) => {
          tablesDone++;
          void events.emit({
            type: 'progress',
            step: 'restore',
            message: `${tablesDone}/${snapshot.tableCount} tables (${table})`,
            detail: { table, tablesDone, tablesTotal: snapshot.tableCount },
          });
        },
      }),
    (o) => ({ ...o }),
  );
  result.restore = outcome;
  try {
    await session.reconnect();
  } catch (error) {
    outcome.manualSteps.push(`reconnect failed after the restore: ${errorMessage(error)}`);
  }
  if (!outcome.ok) {
    return finishRun(session, {
      ...result,
      outcome: 'manual-action-needed',
      exitCode: EXIT.manual,
      message: `${why}; ${outcome.message}`,
      hint: outcome.manualSteps.join('\n        '),
    });
  }
  result.toRevision = snapshot.revision;
  await runHookStep(session, 'afterRestore', { from: progress.priorRevision, to: snapshot.revision, outcome: 'restored' });
  return finishRun(session, {
    ...result,
    ...(progress.restoreIsGoal ? { outcome: 'ok', exitCode: EXIT.ok } : { outcome: 'restored', exitCode: EXIT.restored }),
    message: `${why}; ${outcome.message}`,
    ...(outcome.quarantine ? { hint: `The damaged database is kept as ${outcome.quarantine} (connect to it by that name); drop it yourself when done.` } : {}),
    ...(outcome.quarantineSnapshot
      ? { hint: `The damaged state is kept as snapshot ${outcome.quarantineSnapshot}; \`belay backups prune\` removes it with the other old snapshots.` }
      : {}),
  });
}
