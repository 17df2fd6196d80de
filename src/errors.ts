/**
 * One error type for everything belay reports to a user. Its `code` is the
 * family; the family decides the process exit code (see the contract's table).
 */
export const EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  locked: 3,
  preflight: 4,
  rolledBack: 10,
  restored: 11,
  manual: 12,
} as const;

export type ErrorCode = Exclude<keyof typeof EXIT, 'ok'>;

export interface BelayErrorOptions {
  /** What the user should do next; printed after the message. */
  hint?: string;
  /** Structured facts for `--json` output and the journal. No secrets. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class BelayError extends Error {
  override readonly name = 'BelayError';
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: BelayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  get exitCode(): number {
    return EXIT[this.code];
  }
}

export const usageError = (message: string, options?: BelayErrorOptions): BelayError =>
  new BelayError('usage', message, options);

export const preflightError = (message: string, options?: BelayErrorOptions): BelayError =>
  new BelayError('preflight', message, options);

/** An error's message; for PostgreSQL's own errors with its DETAIL and HINT, as psql shows them. */
export function errorMessage(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // node-postgres' DatabaseError (it has a severity), read by shape so that this module does not load pg
  const { severity, detail, hint } = error as { severity?: unknown; detail?: unknown; hint?: unknown };
  if (error instanceof BelayError || typeof severity !== 'string') return error.message;
  const extra = [typeof detail === 'string' && detail ? `DETAIL: ${detail}` : '', typeof hint === 'string' && hint ? `HINT: ${hint}` : ''].filter(Boolean);
  return extra.length > 0 ? `${error.message} (${extra.join(' ')})` : error.message;
}
