import type { TargetInfo } from '../api/options.js';
import { EXIT } from '../errors.js';

/**
 * The one `--json` document: every command, every outcome, usage errors
 * included, has these keys (null where none). docs/json.md describes it;
 * test/json-envelope.test.ts checks it against every command.
 */
export interface Envelope {
  /** The command as typed, without options: "migrate up", "backups prune", "belay" when none was recognised. */
  command: string;
  exitCode: number;
  /** ok, up-to-date, dry-run, rolled-back, restored, manual-action-needed, unhealthy, damaged, rejected, usage-error, locked, refused, internal-error */
  outcome: string;
  /** One line: what happened. */
  message: string;
  /** What to do about it, when anything. */
  next: string | null;
  /** The database the command worked on; null for commands that open none (backups list, new, cluster) and for failures before one was chosen. */
  target: TargetInfo | null;
  /** The command's own result (documented per command in docs/json.md); for a failure, { error, details }. */
  result: unknown;
  /** The run's journal file, for commands that journal (migrate up, rollback, backup, restore, recover). */
  journal: string | null;
}

const OUTCOME_BY_EXIT: Record<number, string> = {
  [EXIT.ok]: 'ok',
  [EXIT.internal]: 'internal-error',
  [EXIT.usage]: 'usage-error',
  [EXIT.locked]: 'locked',
  [EXIT.preflight]: 'refused',
  [EXIT.rolledBack]: 'rolled-back',
  [EXIT.restored]: 'restored',
  [EXIT.manual]: 'manual-action-needed',
};

export function outcomeOf(exitCode: number): string {
  return OUTCOME_BY_EXIT[exitCode] ?? 'internal-error';
}

const field = (result: unknown, key: string): unknown =>
  result !== null && typeof result === 'object' && !Array.isArray(result) ? (result as Record<string, unknown>)[key] : undefined;

const text = (value: unknown): string | undefined => (typeof value === 'string' && value.length > 0 ? value : undefined);

/** What a command reports; anything it leaves out is read from its result when the result says it (exitCode, outcome, message, hint, journalFile). */
export interface Report {
  result: unknown;
  message?: string;
  exitCode?: number;
  outcome?: string;
  next?: string;
}

export function envelopeOf(command: string, report: Report, target: TargetInfo | null): Envelope {
  const { result } = report;
  const exitCode = report.exitCode ?? (typeof field(result, 'exitCode') === 'number' ? (field(result, 'exitCode') as number) : EXIT.ok);
  return {
    command,
    exitCode,
    outcome: report.outcome ?? text(field(result, 'outcome')) ?? outcomeOf(exitCode),
    message: report.message ?? text(field(result, 'message')) ?? `${command}: ${outcomeOf(exitCode)}`,
    next: report.next ?? text(field(result, 'hint')) ?? text(field(result, 'next')) ?? null,
    target,
    result: result ?? null,
    journal: text(field(result, 'journalFile')) ?? null,
  };
}

/** A refusal or failure: usage, lock, preflight, or a bug. */
export function failureEnvelope(
  command: string,
  failure: { exitCode: number; code: string; message: string; hint: string | undefined; details: Record<string, unknown> | undefined },
  target: TargetInfo | null,
): Envelope {
  return {
    command,
    exitCode: failure.exitCode,
    outcome: outcomeOf(failure.exitCode),
    message: failure.message,
    next: failure.hint ?? null,
    target,
    result: { error: failure.code, details: failure.details ?? {} },
    journal: text(failure.details?.journalFile) ?? null,
  };
}
