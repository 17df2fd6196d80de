import { DatabaseError } from 'pg';

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
}

export class RevisionFailedError extends Error {
  override readonly name = 'RevisionFailedError';
  constructor(readonly failure: RevisionFailure, options?: { cause?: unknown }) {
    super(describeFailure(failure), options);
  }
}

export function describeFailure(f: RevisionFailure): string {
  const where = f.line === undefined ? f.file : `${f.file}:${f.line}`;
  const code = f.sqlstate ? ` [SQLSTATE ${f.sqlstate}]` : '';
  const statement = f.statement ? `\n  statement: ${truncate(f.statement, 300)}` : '';
  return `${f.revision} ${f.direction} failed at ${where}: ${f.message}${code}${statement}`;
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
