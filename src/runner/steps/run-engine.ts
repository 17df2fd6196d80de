import type { ClientBase } from 'pg';
import { MigrationEngine } from '../../migrations/engine.js';
import type { Revision } from '../../migrations/revision.js';
import type { RunSession } from '../session/run-session.js';

/**
 * The engine a run applies or reverts revisions with: on its work connection,
 * a revision's log lines journaled as notes of its step, the journal made
 * durable before a revision that runs outside a transaction.
 */
export function runEngine(session: RunSession, revisions: readonly Revision[], step: 'apply' | 'down', beforeCommit?: (client: ClientBase) => Promise<void>): MigrationEngine {
  const { events } = session.setup;
  return new MigrationEngine(
    revisions,
    session.work.client,
    session.runId,
    {
      log: (revision, message) => void events.emit({ type: 'note', step, revision: revision.name, message }),
      durable: async () => session.journal?.sync(),
      warn: (revision, message) => void events.emit({ type: 'note', step, revision: revision.name, message: `warning: ${message}` }),
    },
    beforeCommit,
    // only a forward run turns a signal into a rollback (see RunSession.lock): downs run to the end
    { signal: step === 'apply' ? session.setup.signal : undefined, mayChange: () => session.assertLocked() },
  );
}
