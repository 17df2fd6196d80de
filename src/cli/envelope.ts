import type { TargetInfo } from '../api/options.js';
import { EXIT } from '../errors.js';
import { describeFailure } from '../migrations/describe-failure.js';
import type { RevisionFailure } from '../migrations/revision-error.js';

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
  isRecord(result) ? result[key] : undefined;

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

const text = (value: unknown): string | undefined => (typeof value === 'string' && value.length > 0 ? value : undefined);

/** A message told in one line, and the lines that did not fit in it. */
export interface Told {
  line: string;
  details: string[];
}

/**
 * The one place a message becomes the envelope's one line. A failing
 * revision's statement, DETAIL, HINT and lock holders (its `failure`, told by
 * describeFailure) leave the line for `details`; so does a list ("  - …"
 * lines) that ends the message (a config's problems). Any other line break
 * is joined into the line, so that no word of it is lost (what follows a
 * block may be the end of the story: "…; restoring it failed").
 */
export function tell(message: string, failure?: unknown): Told {
  let line = message.replace(/\r\n?/g, '\n');
  const details: string[] = [];
  if (isRecord(failure) && typeof failure.revision === 'string' && typeof failure.file === 'string') {
    const told = describeFailure(failure as unknown as RevisionFailure);
    const [head, ...rest] = told.split('\n');
    if (rest.length > 0 && line.includes(told)) {
      line = line.replace(told, head!);
      details.push(...rest.map((l) => l.trim()));
    }
  }
  const [first, ...rest] = line.split('\n');
  // a list that ends the message ("  - …" lines): nothing of the message follows it
  if (rest.length > 0 && rest.every((l) => /^\s+- /.test(l) || l.trim() === '')) {
    details.push(...rest.map((l) => l.trim()).filter(Boolean));
    line = first!;
  }
  line = line
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join('; ');
  return { line: line.length > 0 ? line : message.trim() || '(no message)', details };
}

/** `next` is one line too: a list of steps is joined with "; " (a space after a line that ends in ":", ";" or "." already). */
function nextLine(next: string | undefined): string | undefined {
  if (next === undefined) return undefined;
  const lines = next
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.length > 0 ? lines.reduce((line, step) => `${line}${/[:;.]$/.test(line) ? ' ' : '; '}${step}`) : undefined;
}

/**
 * What to do after an outcome that ends 10, 11 or 12 when whoever reported it
 * said nothing: every such outcome has a `next` (README: "ends with next:").
 */
export function defaultNext(exitCode: number, runId: string | undefined): string | undefined {
  const history = runId ? `\`belay history ${runId}\`` : '`belay history`';
  if (exitCode === EXIT.rolledBack) return `See what was rejected (${history} shows every step), fix it, then run the command again.`;
  if (exitCode === EXIT.restored) return `The snapshot was restored and verified: ${history} shows what failed and what the restore did; fix that before running the change again.`;
  if (exitCode === EXIT.manual) return `Nothing was settled for you: \`belay status\` says where the database stands, ${history} every step of the run; \`belay recover\` settles an interrupted run.`;
  return undefined;
}

/** What a command reports; anything it leaves out is read from its result when the result says it (exitCode, outcome, message, hint, journalFile). */
export interface Report {
  result: unknown;
  message?: string;
  exitCode?: number;
  outcome?: string;
  next?: string;
}

/**
 * Every envelope is made here: `message` one line (the lines beyond it go to
 * `result.messageDetails`, or into the line when the result has no room for
 * them), `next` one line, and never null after an outcome that ends 10, 11 or 12.
 */
function sealed(raw: Omit<Envelope, 'next'> & { next: string | undefined }): Envelope & { details: string[] } {
  const told = tell(raw.message, field(raw.result, 'failure'));
  let { result } = raw;
  let { line } = told;
  if (told.details.length > 0 && !isRecord(result)) line = [line, ...told.details].join('; ');
  if (isRecord(result)) {
    // a run's result says its message and next too: the same lines
    result = {
      ...result,
      ...(result.message === raw.message ? { message: line } : {}),
      ...(typeof result.hint === 'string' ? { hint: nextLine(result.hint) } : {}),
      ...(told.details.length > 0 ? { messageDetails: told.details } : {}),
    };
  }
  const runId = text(field(raw.result, 'runId'));
  const next = nextLine(raw.next) ?? defaultNext(raw.exitCode, runId) ?? null;
  return { ...raw, message: line, next, result, details: told.details };
}

/** The envelope and the lines a text output prints under its message. */
export type Said = Envelope & { details: string[] };

export function envelopeOf(command: string, report: Report, target: TargetInfo | null): Said {
  const { result } = report;
  const exitCode = report.exitCode ?? (typeof field(result, 'exitCode') === 'number' ? (field(result, 'exitCode') as number) : EXIT.ok);
  return sealed({
    command,
    exitCode,
    outcome: report.outcome ?? text(field(result, 'outcome')) ?? outcomeOf(exitCode),
    message: report.message ?? text(field(result, 'message')) ?? `${command}: ${outcomeOf(exitCode)}`,
    next: report.next ?? text(field(result, 'hint')) ?? text(field(result, 'next')),
    target,
    result: result ?? null,
    journal: text(field(result, 'journalFile')) ?? null,
  });
}

/** A refusal or failure: usage, lock, preflight, or a bug. */
export function failureEnvelope(
  command: string,
  failure: { exitCode: number; code: string; message: string; hint: string | undefined; details: Record<string, unknown> | undefined },
  target: TargetInfo | null,
): Said {
  return sealed({
    command,
    exitCode: failure.exitCode,
    outcome: outcomeOf(failure.exitCode),
    message: failure.message,
    next: failure.hint,
    target,
    result: { error: failure.code, details: failure.details ?? {} },
    journal: text(failure.details?.journalFile) ?? null,
  });
}

/** The JSON document: the envelope's eight keys, nothing else. */
export function documentOf(said: Said): Envelope {
  const { details: _details, ...envelope } = said;
  return envelope;
}
