import type { ClientBase } from 'pg';

export interface CheckContext {
  client: ClientBase;
  /** Base environment for command checks. */
  env: NodeJS.ProcessEnv;
  signal: AbortSignal | undefined;
  /** When (performance.now()) the health timeout runs out: a check still running then is cancelled. */
  deadline?: number;
}

export interface CheckOutcome {
  ok: boolean;
  /** What was seen: status and body head, first rows, exit code and output tail. */
  evidence: string;
  /**
   * A failure that was there before the change (an index already invalid at
   * the baseline): reported among the failing checks, never held against the change.
   */
  alreadyFailing?: boolean;
}

/** One health check; one implementation per file. */
export interface HealthCheck {
  kind: 'sql' | 'http' | 'command' | 'structural' | 'invariant';
  name: string;
  /** False for a check whose answer cannot change by waiting (structure): a failure is final, never retried. */
  changesByWaiting?: boolean;
  run(ctx: CheckContext): Promise<CheckOutcome>;
}
