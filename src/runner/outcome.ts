import { EXIT } from '../errors.js';
import type { RunResult } from './results.js';
import type { RunSession } from './run-session.js';

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
