import { DatabaseError } from 'pg';
import { describeBlocker, type LockBlocker } from '../db/lock-watchdog.js';
import { SQLSTATE } from '../db/sqlstate.js';

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

export function describeFailure(f: RevisionFailure): string {
  const where = f.line === undefined ? f.file : `${f.file}:${f.line}`;
  const code = f.sqlstate ? ` [SQLSTATE ${f.sqlstate}]` : '';
  const lines = [`${f.revision} ${f.direction} failed at ${where}: ${f.message}${code}`];
  if (f.detail) lines.push(`  DETAIL: ${f.detail}`);
  if (f.hint) lines.push(`  HINT: ${f.hint}`);
  for (const b of f.blockers ?? []) lines.push(`  lock held by: ${describeBlocker(b)}`);
  if (f.sqlstate === LOCK_NOT_AVAILABLE && !f.blockers?.length) lines.push('  lock held by: a session not seen in time (look at pg_locks and pg_stat_activity)');
  if (f.statement) lines.push(`  statement: ${truncate(f.statement, 300)}`);
  return lines.join('\n');
}

/** A lock timeout, told with the sessions that held the lock. */
export function withBlockers(error: unknown, blockers: LockBlocker[]): unknown {
  if (!(error instanceof RevisionFailedError) || error.failure.sqlstate !== LOCK_NOT_AVAILABLE || blockers.length === 0) return error;
  return new RevisionFailedError({ ...error.failure, blockers }, { cause: error.cause });
}

function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** Fill message, SQLSTATE, detail and hint from a pg error. */
export function failureFromError(
  error: unknown,
  base: Omit<RevisionFailure, 'message'>,
): RevisionFailure {
  const failure: RevisionFailure = { ...base, message: error instanceof Error ? error.message : String(error) };
  if (error instanceof DatabaseError) {
    if (error.code) failure.sqlstate = error.code;
    if (error.detail) failure.detail = error.detail;
    if (error.hint) failure.hint = error.hint;
  }
  return failure;
}
