import { DatabaseError } from 'pg';
import { isConnectionLost } from '../db/connection-lost.js';
import type { LockBlocker } from '../db/lock-watchdog.js';
import { SQLSTATE } from '../db/sqlstate.js';
import { describeFailure } from './describe-failure.js';

/** Where in a revision something failed, for the journal and the user. */
export interface RevisionFailure {
  revision: string;
  direction: 'up' | 'down' | 'verify';
  file: string;
  message: string;
  /** 1-based line in the file of the failing statement, when known. */
  line?: number;
  statement?: string;
  sqlstate?: string;
  detail?: string;
  hint?: string;
  /** Whether the failed step ran inside a transaction that was rolled back. */
  transactional: boolean;
  /** What to do about it, when the failure itself says (belay's advice, unlike `hint`, which is PostgreSQL's). */
  next?: string;
  /** On a lock timeout: the sessions that held the lock, as seen while the revision waited. */
  blockers?: LockBlocker[];
}

const LOCK_NOT_AVAILABLE = SQLSTATE.lockNotAvailable;

export class RevisionFailedError extends Error {
  override readonly name = 'RevisionFailedError';
  constructor(readonly failure: RevisionFailure, options?: { cause?: unknown }) {
    super(describeFailure(failure), options);
  }
}

/** A lock timeout, told with the sessions that held the lock. */
export function withBlockers(error: unknown, blockers: LockBlocker[]): unknown {
  if (!(error instanceof RevisionFailedError) || error.failure.sqlstate !== LOCK_NOT_AVAILABLE || blockers.length === 0) return error;
  return new RevisionFailedError({ ...error.failure, blockers }, { cause: error.cause });
}

/** An error's message with the causes it was thrown with (`new Error('…', { cause })`), outermost first. */
export function messageWithCauses(error: unknown): string {
  const parts = [error instanceof Error ? error.message : String(error)];
  const seen = new Set<unknown>([error]);
  for (let cause = error instanceof Error ? error.cause : undefined; cause !== undefined && !seen.has(cause); cause = cause instanceof Error ? cause.cause : undefined) {
    seen.add(cause);
    parts.push(`caused by: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
  return parts.join('; ');
}

/** Fill message (with its causes), SQLSTATE, detail and hint from a pg error. */
export function failureFromError(
  error: unknown,
  base: Omit<RevisionFailure, 'message'>,
): RevisionFailure {
  // a socket error is not the statement's: said as what it is, so that "failed at FILE:LINE" is not read as the SQL refused
  const lost = !(error instanceof DatabaseError) && isConnectionLost(error);
  const failure: RevisionFailure = { ...base, message: lost ? `the connection to the server was lost (${messageWithCauses(error)})` : messageWithCauses(error) };
  if (error instanceof DatabaseError) {
    if (error.code) failure.sqlstate = error.code;
    if (error.detail) failure.detail = error.detail;
    if (error.hint) failure.hint = error.hint;
  }
  return failure;
}
