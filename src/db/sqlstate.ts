import { DatabaseError } from 'pg';
import { describeBlocker, type LockBlocker } from './lock-watchdog.js';

/** The SQLSTATEs belay gives its own advice for. Advice goes by these codes, never by the message text (it is translated). */
export const SQLSTATE = {
  /** unique_violation */
  uniqueViolation: '23505',
  /** duplicate_schema */
  duplicateSchema: '42P06',
  /** insufficient_privilege */
  insufficientPrivilege: '42501',
  /** invalid_catalog_name: no database of that name */
  invalidCatalogName: '3D000',
  /** in_failed_sql_transaction: a statement sent in a transaction block after one failed in it */
  inFailedSqlTransaction: '25P02',
  /** object_not_in_prerequisite_state: among others, a login to a database that does not allow connections (ALLOW_CONNECTIONS false) */
  objectNotInPrerequisiteState: '55000',
  /** object_in_use: a database other sessions are connected to (as a template, or to drop) */
  objectInUse: '55006',
  /** lock_not_available: lock_timeout, or NOWAIT */
  lockNotAvailable: '55P03',
  /** too_many_connections: the role's, the database's CONNECTION LIMIT, or the server's max_connections, reached */
  tooManyConnections: '53300',
  /** query_canceled: a cancel request (belay's own on a signal, or another session's pg_cancel_backend), or statement_timeout */
  queryCanceled: '57014',
} as const;

/** The SQLSTATE of a PostgreSQL error; undefined for anything else (a Node.js error's code is not one). */
export function sqlstateOf(error: unknown): string | undefined {
  return error instanceof DatabaseError && typeof error.code === 'string' ? error.code : undefined;
}

export interface StoppedReadContext {
  /** The run's signal: aborted when the operator interrupted it (SIGINT, SIGTERM). */
  signal?: AbortSignal | undefined;
  lockTimeoutSeconds: number;
  statementTimeoutSeconds: number;
  /** Who held the lock, for a lock timeout: seen while waiting, or after. */
  blockers?: LockBlocker[];
  /** What to do about a permission denied (42501), without "Nothing was changed." */
  privilege: string;
}

/**
 * The `next:` for a statement that failed while belay only read the
 * database (nothing changed): by the cause, as its SQLSTATE tells it.
 */
export function stoppedReadAdvice(error: unknown, context: StoppedReadContext): string {
  const code = sqlstateOf(error);
  const unchanged = 'Nothing was changed.';
  if (context.signal?.aborted) return `It was interrupted (a signal) before it changed anything. ${unchanged} Run it again when you are ready.`;
  if (code === SQLSTATE.lockNotAvailable) {
    const blockers = context.blockers ?? [];
    const who = blockers.length > 0 ? `held by ${blockers.map(describeBlocker).join('; ')}` : 'held by another session (look in pg_locks and pg_stat_activity)';
    const end = blockers.length > 0 ? ` (or end it: SELECT pg_terminate_backend(${blockers[0]!.pid}))` : '';
    return `A lock belay waited for was ${who}. Run again once it ends${end}, or let belay wait longer: database.lockTimeoutSeconds in the config (now ${context.lockTimeoutSeconds} s). ${unchanged}`;
  }
  if (code === SQLSTATE.queryCanceled) {
    const timeout = context.statementTimeoutSeconds > 0 ? `database.statementTimeoutSeconds (${context.statementTimeoutSeconds} s) ran out, or ` : '';
    return `The statement was canceled: ${timeout}another session canceled it (pg_cancel_backend). ${unchanged} Run again${timeout ? ', raising database.statementTimeoutSeconds if the tables need longer' : ''}.`;
  }
  if (code === SQLSTATE.insufficientPrivilege) return `${context.privilege} ${unchanged}`;
  return `${unchanged} Fix what the message says, then run again.`;
}
