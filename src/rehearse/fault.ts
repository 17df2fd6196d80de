import { isConnectionLost } from '../db/connection-lost.js';
import { sqlstateOf, SQLSTATE } from '../db/sqlstate.js';
import { BelayError, errorMessage, preflightError } from '../errors.js';
import { RevisionFailedError } from '../migrations/revision-error.js';
import { errnoCode } from '../unreadable.js';
import type { RehearsalReport } from './report.js';
import type { Throwaway } from './throwaway.js';

/** A throwaway as a fault names it: where it is, and how to remove it by hand. */
type Named = Pick<Throwaway, 'where' | 'left' | 'removeByHand'>;

const lostDuringStep = (error: unknown): boolean => isConnectionLost(error) || (error instanceof Error && isConnectionLost(error.cause));

const stateOf = (error: unknown): string | undefined => (error instanceof RevisionFailedError ? error.failure.sqlstate : sqlstateOf(error));

/**
 * SQLSTATE classes a revision's statement fails with when the server runs
 * out of what it needs (disk, memory: 53) or fails itself (58, XX). The
 * other environment classes can be the revision's own doing (a statement
 * timeout, a program limit, a lock it waits for), and stay its verdict.
 */
const SERVER_TROUBLE = new Set(['53', '58', 'XX']);

/** Whether a revision's step failed for its server (it stopped answering, it ran out of disk), which says nothing about the revision. */
export function noVerdictOnStep(error: unknown): boolean {
  const state = stateOf(error);
  return lostDuringStep(error) || (state !== undefined && SERVER_TROUBLE.has(state.slice(0, 2)));
}

/**
 * SQLSTATE classes of a server or machine in trouble (a connection lost, a
 * role refused, resources exhausted, an object in use, an operator's
 * intervention, a system error): not a verdict on a revision, not a bug.
 */
const ENVIRONMENT_CLASSES = new Set(['08', '28', '3D', '53', '54', '55', '57', '58', 'XX']);

function isEnvironmentFault(error: unknown): boolean {
  if (lostDuringStep(error)) return true;
  const state = stateOf(error);
  if (state !== undefined) return state === SQLSTATE.insufficientPrivilege || ENVIRONMENT_CLASSES.has(state.slice(0, 2));
  // a Node.js system error (a full disk, a folder it may not write)
  return errnoCode(error) !== undefined;
}

/**
 * What a rehearsal that could not finish ends with: a fault of its server or
 * machine is exit 12 with what to do (nothing real was touched; the
 * throwaway is named when it could not be removed either); anything else (a
 * bug) is left as it is.
 */
export function rehearsalFault(error: unknown, throwaway: Named, leftBehind: { error: unknown } | undefined): unknown {
  const { where } = throwaway;
  const removal = leftBehind ? `; ${where} could not be removed either (${errorMessage(leftBehind.error)})` : '';
  if (error instanceof BelayError) {
    if (!leftBehind) return error;
    return new BelayError('manual', `${error.message}${removal}`, { hint: [error.hint, throwaway.removeByHand].filter(Boolean).join(' '), details: error.details, cause: error });
  }
  if (!isEnvironmentFault(error)) return error;
  const outOfRoom = stateOf(error)?.startsWith('53') === true;
  return new BelayError('manual', `the rehearsal on ${where} could not finish: ${errorMessage(error)}${removal}`, {
    hint: [
      outOfRoom
        ? 'Nothing real was touched, and no verdict was reached. Its server ran out of disk, memory or connections: free some (an ephemeral cluster lives in the temp folder, TMPDIR: point it at a bigger one), then run `belay rehearse` again.'
        : 'Nothing real was touched, and no verdict was reached. Check the server (its log, its disk, whoever ended the session), then run `belay rehearse` again.',
      ...(leftBehind ? [throwaway.removeByHand] : []),
    ].join(' '),
    cause: error,
  });
}

/** What a rehearsal that could not make its throwaway ends with: a fault of the server or machine is exit 4 (nothing was touched); a bug is left as it is. */
export function startFault(error: unknown): unknown {
  if (error instanceof BelayError || !isEnvironmentFault(error)) return error;
  return preflightError(`the rehearsal could not start: ${errorMessage(error)}`, {
    hint: 'Nothing was touched. Check the server (its log, its disk, its connection limit) or, with no connection configured, the temp folder its ephemeral cluster is made in, then run `belay rehearse` again.',
    cause: error,
  });
}

/**
 * A revision up to `from` that fails on the throwaway, which is built from
 * the revisions alone: it needs what the connected database holds and no
 * revision makes (a schema made by hand). No verdict, nothing real touched:
 * exit 4. A fault of the server is left to rehearsalFault.
 */
export function buildFault(error: unknown, from: string): unknown {
  if (!(error instanceof RevisionFailedError) || isEnvironmentFault(error)) return error;
  return preflightError(`the rehearsal could not build its throwaway up to ${from}: ${error.message}`, {
    hint: `Nothing real was touched, and nothing was rehearsed: the revisions up to ${from} do not build from an empty database what the connected one holds (an object made by hand?). Start from a copy that holds it: --template NAME (a database of the connected server) or --from-backup ID.`,
    cause: error,
  });
}

/** A rehearsal that reached its verdict but could not remove its throwaway: the verdict is told, and what is left. */
export function notRemoved(report: RehearsalReport, throwaway: Named, error: unknown, unwritten: readonly unknown[] = []): BelayError {
  const reports = unwritten.map((failure) => `; and ${errorMessage(failure)}`).join('');
  const hints = unwritten.flatMap((failure) => (failure instanceof BelayError && failure.hint ? [failure.hint] : []));
  return new BelayError('manual', `the rehearsal ${report.ok ? 'passed' : 'failed'}, but ${throwaway.where} could not be removed: ${errorMessage(error)}${reports}`, {
    hint: [throwaway.removeByHand, ...hints].join(' '),
    cause: error,
  });
}

/**
 * A rehearsal on a real server that reached its verdict but left something
 * beside its throwaway (a role, a replication slot, a role's setting), which
 * its downs, run again at the end, did not undo: exit 12, naming each and what
 * to run. Only what appeared or changed during the rehearsal is named.
 */
export function leftOnServer(report: RehearsalReport, throwaway: Named, leftBehind: { error: unknown } | undefined, unwritten: readonly unknown[]): BelayError {
  const changes = report.leftOnServer;
  const fixes = changes.flatMap((change) => (change.fix ? [`${change.fix};`] : []));
  const byHand = changes.filter((change) => !change.fix).map((change) => change.said);
  const removal = leftBehind ? `; ${throwaway.where} could not be removed either (${errorMessage(leftBehind.error)})` : '';
  const reports = unwritten.map((failure) => `; and ${errorMessage(failure)}`).join('');
  const verdict = report.ok ? 'passed' : `failed (${report.cases.filter((c) => !c.ok).map((c) => `${c.direction} ${c.revision}: ${c.message ?? 'failed'}`).join('; ')})`;
  return new BelayError('manual', `the rehearsal ${verdict}, but it left on the server what dropping its throwaway does not remove: ${changes.map((change) => change.said).join(', ')}${removal}${reports}`, {
    hint: [
      'The rehearsal made or changed these (they were not so before it began), and the downs of the revisions it applied, run again at its end, did not undo them: a `migrate up` of the same revisions would now meet them.',
      ...(fixes.length > 0 ? [`Once checked, run ${fixes.join(' ')}`] : []),
      ...(byHand.length > 0 ? [`Make again by hand: ${byHand.join(', ')}.`] : []),
      'Then make each down undo what its up does on the whole server (see the failing cases), and run `belay rehearse` again.',
      ...(leftBehind ? [throwaway.removeByHand] : []),
      ...unwritten.flatMap((failure) => (failure instanceof BelayError && failure.hint ? [failure.hint] : [])),
    ].join(' '),
    details: { leftOnServer: changes, cases: report.cases },
    cause: leftBehind?.error,
  });
}

/**
 * A rehearsal stopped by a signal (`by`: "a signal", "a second SIGINT"): no
 * verdict, nothing real touched; exit 4 when its throwaway is removed (or was
 * not made), else 12 naming what is left and how to remove it.
 */
export function interrupted(by: string, throwaway: Named | undefined, leftBehind: { error: unknown } | undefined): BelayError {
  if (!throwaway) return preflightError(`the rehearsal was stopped by ${by} before it had made its throwaway`, { hint: 'Nothing was made, and nothing real was touched.' });
  if (!leftBehind) return preflightError(`the rehearsal was stopped by ${by}; ${throwaway.where} is removed`, { hint: 'Nothing real was touched, and no verdict was reached: run `belay rehearse` again to have one.' });
  return new BelayError('manual', `the rehearsal was stopped by ${by}, and ${throwaway.where} could not be removed: ${errorMessage(leftBehind.error)}`, {
    hint: `Nothing real was touched, and no verdict was reached. ${throwaway.removeByHand}`,
    cause: leftBehind.error,
  });
}

/**
 * A rehearsal whose throwaway was being removed (or still made: `named`
 * false) when belay was told by `by` to exit without waiting: exit 12,
 * naming what may be left and how to remove it.
 */
export function removalCut(by: string, throwaway: Named, named: boolean): BelayError {
  return new BelayError('manual', `the rehearsal was stopped by ${by} while ${named ? `${throwaway.where} was being removed: ${throwaway.left} may be left behind` : `it was making ${throwaway.where}: it may be left behind`}`, {
    hint: `Nothing real was touched, and no verdict was reached. ${throwaway.removeByHand}`,
  });
}
