import { BelayError, EXIT } from '../../errors.js';
import { errorDetail } from '../../events/run-events.js';
import type { PreflightCheck } from '../steps/preflight.js';
import type { RunResult } from '../result/results.js';
import { RunSession } from './run-session.js';
import type { RunSetup } from './setup.js';

/**
 * Open a run's session, do the work, close it (releasing the lock). A usage,
 * lock or preflight refusal after the journal started is journaled as refused.
 */
export async function withRunSession<T>(setup: RunSetup, command: string, work: (session: RunSession) => Promise<T>): Promise<T> {
  const session = await RunSession.open(setup, command);
  try {
    return await work(session);
  } catch (error) {
    if (session.journal && error instanceof BelayError) {
      await setup.events.emit({
        type: 'run-end',
        outcome: { status: 'refused', exitCode: error.exitCode, finishedAt: new Date().toISOString(), snapshotId: null, toRevision: null, summary: errorDetail(error) },
      });
    }
    throw error;
  } finally {
    await session.close();
  }
}

/** A run's result before it has done anything: at `revision`, exit 0. */
export function baseResult(session: RunSession, revision: string | null, checks: PreflightCheck[] = []): RunResult {
  return {
    runId: session.runId,
    command: session.command,
    outcome: 'ok',
    exitCode: EXIT.ok,
    message: '',
    fromRevision: revision,
    toRevision: revision,
    revisions: [],
    snapshot: null,
    journalFile: session.journal?.path ?? null,
    checks,
  };
}

/** Record how the run ended (journal file and database) and hand the result back. */
export async function finishRun(session: RunSession, result: RunResult): Promise<RunResult> {
  await session.setup.events.emit({
    type: 'run-end',
    outcome: {
      status: result.outcome,
      exitCode: result.exitCode,
      finishedAt: new Date().toISOString(),
      snapshotId: result.snapshot?.id ?? null,
      toRevision: result.toRevision,
      summary: {
        message: result.message,
        ...(result.hint ? { next: result.hint } : {}),
        revisions: result.revisions,
        ...(result.failure ? { failure: result.failure } : {}),
        ...(result.restore ? { restore: result.restore } : {}),
      },
    },
  });
  return result;
}

export const OUTCOME_EXIT: Record<string, number> = {
  ok: EXIT.ok,
  'up-to-date': EXIT.ok,
  'rolled-back': EXIT.rolledBack,
  restored: EXIT.restored,
  'manual-action-needed': EXIT.manual,
};
