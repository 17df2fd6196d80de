import type { Abandoned } from '../../api/options.js';
import { isConnectionLost } from '../../db/connection-lost.js';
import { BelayError, EXIT, errorMessage } from '../../errors.js';
import { errorDetail } from '../../events/run-events.js';
import type { RunFacts } from '../result/ledger.js';
import type { RunResult, RunStatus } from '../result/results.js';
import { refusalStatus } from '../../journal/record.js';
import { RunSession } from './run-session.js';
import { openTargetSession, type RunSetup } from './setup.js';

/**
 * Open a run's session, do the work, close it (releasing the lock). A usage,
 * lock or preflight refusal after the journal started is journaled as refused.
 */
export async function withRunSession(setup: RunSetup, command: string, work: (session: RunSession) => Promise<RunResult>): Promise<RunResult> {
  const session = await RunSession.open(setup, command);
  let unsettled: { runId: string; journalFile: string } | undefined;
  setup.onRun?.({ abandon: (reason) => abandonRun(session, reason), unsettled: () => unsettled });
  try {
    return await work(session);
  } catch (thrown) {
    // a control query the lost session failed: the run stops as it does where it looks for the loss (a refusal, which
    // changed nothing, stays one: a restore the server's crash left untouched is settled, not one for recover to redo)
    if (session.lockLost !== undefined && !(thrown instanceof BelayError) && session.journal?.databaseAttached) return await finishRun(session, await lockLostVerdict(session));
    const error = unchangedAndUnreachable(session, thrown) ? serverGone(thrown) : thrown;
    if (!(error instanceof BelayError) && session.journal && !(await session.journal.databaseUpToDate())) {
      // the server stopped (or the connection broke) after the run began: not a bug, and not "nothing touched"
      return await finishRun(session, { outcome: 'manual-action-needed', message: `the run stopped: the database stopped answering (${errorMessage(error)})` });
    }
    if (session.journal && error instanceof BelayError) {
      await setup.events.emit({
        type: 'run-end',
        outcome: { status: refusalStatus(error.exitCode), exitCode: error.exitCode, finishedAt: new Date().toISOString(), snapshotId: null, toRevision: null, summary: { ...errorDetail(error) } },
      });
      // the refusal is this run's outcome, journaled: the report names the run and its journal file
      throw new BelayError(error.code, error.message, { hint: error.hint, details: { ...error.details, runId: session.runId, journalFile: session.journal.path }, cause: error.cause });
    }
    if (session.journal && !session.journal.databaseAttached) {
      // a bug before the run changed anything: it ends (exit 1), not left "unfinished" for a recover that has nothing to settle
      await setup.events.emit({
        type: 'run-end',
        outcome: { status: 'internal-error', exitCode: EXIT.internal, finishedAt: new Date().toISOString(), snapshotId: null, toRevision: session.ledger.facts.toRevision, summary: { message: errorMessage(error) } },
      });
    } else if (session.journal && !session.journal.hasEnded) {
      unsettled = { runId: session.runId, journalFile: session.journal.path };
    }
    throw error;
  } finally {
    await session.close();
  }
}

/**
 * Leave the run where it stands (the process exits at once: nothing here
 * waits). The database's record of it stays "running", as after a kill, so
 * that `status` shows it interrupted and `recover` settles it; the journal
 * file says why it stopped.
 */
function abandonRun(session: RunSession, reason: string): Abandoned {
  const journal = session.journal;
  if (!journal) return { state: 'not-begun' };
  if (journal.hasEnded) return { state: 'ended' };
  const { facts } = session.ledger;
  const during = facts.openSteps.at(-1) ?? null;
  const where = during ? ` during "${during}"` : '';
  const message = `abandoned at once (${reason})${where}: the run is left where it stands, at ${facts.toRevision ?? 'the start'} as far as its journal knows`;
  const recorded = journal.noteNow('journal', message, { abandoned: true, reason, openSteps: facts.openSteps });
  const result = resultOf(session, {
    outcome: 'manual-action-needed',
    message: recorded ? message : `${message} (its journal file could not record this)`,
    hint: 'Run `belay recover`: it settles this run, reverting what it left applied, and verifies the data (`belay status` says what it will do).',
    failure: { abandoned: reason, during },
  });
  // not a run that ended: what it had not reached (or was in) is still pending
  return { state: 'abandoned', result: { ...result, revisions: facts.revisions } };
}

/** The server stopped answering before the run wrote to the database (lock, preflight): nothing was changed. */
function unchangedAndUnreachable(session: RunSession, error: unknown): boolean {
  return !(error instanceof BelayError) && isConnectionLost(error) && session.journal?.databaseAttached !== true;
}

function serverGone(error: unknown): BelayError {
  return new BelayError('preflight', `the database stopped answering before this run changed anything: ${errorMessage(error)}`, {
    hint: 'Nothing was changed. Check that the server is up and reachable (pg_isready), then run the command again.',
    cause: error,
  });
}

/**
 * A run whose lock went with its control session: it stopped without
 * committing more, and did not roll back (another run may hold the lock now).
 * Its row in the database stays "running", for `belay recover`. Whether the
 * server still answers is asked on a new connection: only a session of the
 * run's may have ended.
 */
export async function lockLostVerdict(session: RunSession): Promise<Verdict> {
  const { revisions } = session.ledger.facts;
  const stopped = revisions.find((r) => r.status === 'failed' || r.status === 'pending');
  const committed = revisions.filter((r) => r.status === 'applied' || r.status === 'reverted').map((r) => (r.status === 'reverted' ? `${r.name} (reverted)` : r.name));
  const answers = await openTargetSession(session.setup, `${session.applicationName} probe`).then(
    (probe) => probe.close().then(() => true),
    () => false,
  );
  const next = '`belay status` shows who holds the lock; once it is free, `belay recover` settles this run and verifies the data (`belay status` says what it will do).';
  return {
    outcome: 'manual-action-needed',
    message: `${session.lockLost}: stopped before committing ${stopped?.name ?? 'anything more'}; ${committed.length > 0 ? `what this run committed before stays: ${committed.join(', ')}` : 'this run had committed nothing'}${answers ? '' : '; the server does not answer a new connection either'}`,
    hint: answers ? `Another run may hold the lock now: ${next}` : `When the server answers again: ${next}`,
    failure: { lockLost: session.lockLost, ...(stopped ? { stoppedBefore: stopped.name } : {}), committed },
  };
}

const OUTCOME_EXIT: Record<Exclude<RunStatus, 'dry-run'>, number> = {
  ok: EXIT.ok,
  'up-to-date': EXIT.ok,
  'rolled-back': EXIT.rolledBack,
  restored: EXIT.restored,
  'manual-action-needed': EXIT.manual,
};

/** How the run ends, in the runner's words; everything else in the result comes from its step events. */
export interface Verdict {
  outcome: Exclude<RunStatus, 'dry-run'>;
  message: string;
  hint?: string;
  failure?: Record<string, unknown>;
}

/** The result as the run's events so far make it. */
export function resultOf(session: RunSession, verdict: Omit<Verdict, 'outcome'> & { exitCode?: number; outcome: RunStatus }): RunResult {
  const { facts } = session.ledger;
  return {
    runId: session.runId,
    command: session.command,
    outcome: verdict.outcome,
    exitCode: verdict.exitCode ?? OUTCOME_EXIT[verdict.outcome as Exclude<RunStatus, 'dry-run'>],
    message: verdict.message,
    ...(verdict.hint ? { hint: verdict.hint } : {}),
    fromRevision: facts.fromRevision,
    toRevision: facts.toRevision,
    revisions: session.ledger.finalRevisions(),
    snapshot: facts.snapshot,
    journalFile: session.journal?.path ?? null,
    checks: facts.checks,
    unhealthy: facts.failingChecks,
    ...(verdict.failure ? { failure: verdict.failure } : {}),
    ...(facts.restore ? { restore: facts.restore } : {}),
  };
}

/** Where the runner's words and the step events disagree, the events win: never "rolled back" with a revision still applied. */
function contradiction(verdict: Verdict, facts: RunFacts): string | undefined {
  const applied = facts.revisions.filter((r) => r.status === 'applied').map((r) => r.name);
  if (verdict.outcome === 'rolled-back' && applied.length > 0) return `the journal shows ${applied.join(', ')} still applied`;
  if (verdict.outcome === 'restored' && facts.restore?.ok !== true) return 'the journal shows no restore that worked';
  return undefined;
}

/**
 * Record how the run ended (journal file and database) and hand the result
 * back. When the database no longer answers, its copy of the journal still
 * says "running": the run ends 12, for `belay recover` to settle.
 */
export async function finishRun(session: RunSession, verdict: Verdict): Promise<RunResult> {
  let final = verdict;
  const disagreement = contradiction(verdict, session.ledger.facts);
  if (disagreement) {
    final = { outcome: 'manual-action-needed', message: `${verdict.message}; but ${disagreement}`, hint: `\`belay status\` shows where the database stands; \`belay history ${session.runId}\` every step of this run.` };
  }
  const lost = session.journal?.fileFailure;
  if (lost && !final.message.includes(lost.message)) {
    final = { ...final, message: `${final.message}; ${lost.message} from then on: the database's copy of the journal (\`belay history\`) holds every step`, hint: final.hint ?? lost.hint };
  }
  // a run that lost its lock says so; its record in the database stays "running" for recover
  if (session.journal && session.lockLost === undefined && !(await session.journal.databaseUpToDate())) {
    final = {
      outcome: 'manual-action-needed',
      message: `${verdict.message}; but the database stopped answering before this run's record in it was finished`,
      hint: 'When the server answers again, run `belay recover`: it settles this run and verifies the data (`belay status` says what it will do).',
      failure: { ...verdict.failure, unrecordedOutcome: verdict.outcome },
    };
  }
  const result = resultOf(session, final);
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
        ...(result.unhealthy.length > 0 ? { unhealthy: result.unhealthy } : {}),
        ...(result.failure ? { failure: result.failure } : {}),
        ...(result.restore ? { restore: result.restore } : {}),
      },
    },
  });
  return result;
}
