import type { Command } from 'commander';
import type { RunHandle, TargetInfo } from '../api/options.js';
import { parseDatabaseUrl } from '../db/connection.js';
import { BelayError, EXIT, errorMessage } from '../errors.js';
import type { BelayOptions } from '../api/options.js';
import { commandPath, givenFlags, globalFlags, type CliContext, type CommandReport } from './context.js';
import { documentOf, envelopeOf, failureEnvelope, outcomeOf, type Said } from './envelope.js';
import { confirmer, type Question } from './confirm.js';
import type { RunResult } from '../runner/result/results.js';
import { formatRunResult } from './format.js';
import { createLogger, type LogLevel } from './logger.js';
import { output } from './output.js';
import { scrub } from '../db/secret-forms.js';
import { progressPrinter } from './progress.js';
import { firstLine, lastLine } from './target-line.js';

function secretsFrom(flags: { databaseUrl?: string }): string[] {
  const secrets = [process.env.PGPASSWORD ?? ''];
  for (const url of [flags.databaseUrl, process.env.DATABASE_URL]) {
    if (!url) continue;
    try {
      const { password } = parseDatabaseUrl(url, 'url');
      if (password) secrets.push(password);
    } catch {
      // not a URL; reported when it is used
    }
  }
  return secrets.filter((secret) => secret.length > 0);
}

function progressLevel(level: LogLevel): 'all' | 'failures' | 'none' {
  if (level === 'silent') return 'none';
  return level === 'warn' || level === 'error' ? 'failures' : 'all';
}

export interface ActionKind {
  /** Changes the database: its first and last lines name the target. */
  changing?: boolean;
  /** Only reads and reports (status, plan, history…): its output is its whole job, so output that cannot be written fails it (exit 4). */
  reads?: boolean;
  /** What a first SIGINT/SIGTERM/SIGHUP makes it do, when it is not what it makes a run do (stop at a safe point, roll back). */
  firstSignal?: string;
}

/**
 * Run a command's work: build the library options from the global flags,
 * print its result (the --json envelope, or text), and turn its outcome into
 * the contract's exit code.
 */
export async function runAction(command: Command, work: (ctx: CliContext) => Promise<CommandReport>, kind: ActionKind = {}): Promise<void> {
  const flags = globalFlags(command);
  const name = commandPath(command);
  const json = flags.json === true;
  const secrets = secretsFrom(givenFlags(command));
  const logger = createLogger(flags.logLevel, secrets);
  if (flags.databaseUrl && secrets.some((secret) => flags.databaseUrl?.includes(encodeURIComponent(secret)) || flags.databaseUrl?.includes(secret))) {
    logger.warn('--database-url carries a password, which every user of this machine can read in the process list: prefer DATABASE_URL, PGPASSWORD or a PGPASSFILE');
  }
  const level = progressLevel(flags.logLevel);
  const { stdout, stderr } = output();
  const writeErr = (text: string): void => stderr.write(scrub(text, secrets));
  const progress = progressPrinter({ write: writeErr, clearLine: () => stderr.raw('\r\x1b[K'), tty: process.stderr.isTTY === true, level });
  let target: TargetInfo | null = null;
  let run: RunHandle | undefined;
  const controller = new AbortController();
  const options: BelayOptions = {
    env: process.env,
    onEvent: progress.listener,
    onTarget: (resolved) => {
      target = resolved;
      // at every log level: the contract has every changing command name its target in its first line
      if (kind.changing) writeErr(`${firstLine(name, resolved)}\n`);
    },
    onSecrets: (resolved) => {
      secrets.push(...resolved);
    },
    signal: controller.signal,
    onRun: (handle) => {
      run = handle;
    },
  };
  if (flags.databaseUrl !== undefined) options.databaseUrl = flags.databaseUrl;
  if (flags.embedded) options.embedded = true;
  if (flags.migrations !== undefined) options.migrations = flags.migrations;
  if (flags.backups !== undefined) options.backups = flags.backups;
  if (flags.config !== undefined) options.config = flags.config;
  const question: Question = { open: false };
  const ctx: CliContext = { flags, json, options, confirm: confirmer(flags.yes === true, controller.signal, question) };
  const closing = (): string[] => (kind.changing && target ? [lastLine(target)] : []);
  /** The one result: the --json document on stdout, else the text (stdout) and the target line. */
  const resultText = (said: Said, report: CommandReport): string =>
    json ? jsonText(documentOf(said), secrets) : `${scrub([report.human(said), ...(report.failed ? [] : nextLines(said)), ...closing()].join('\n'), secrets)}\n`;
  /** Set once belay itself exits at once (below): the exit listener then has nothing to say. */
  let exiting = false;
  /** Stopped by a second signal, the run's own result aside: say so, and exit. */
  const stopped = (exitCode: number, message: string, hint: string | undefined, details: Record<string, unknown>): never => {
    exiting = true;
    progress.close();
    const said = failureEnvelope(name, { exitCode, code: 'interrupted', message, hint, details }, target);
    if (json) stdout.write(jsonText(documentOf(said), secrets));
    else writeErr([`belay: ${message}`, ...nextLines(said), ...closing(), ''].join('\n'));
    // stdout and stderr are written synchronously here (files, pipes and terminals, on Linux and macOS)
    process.exit(exitCode);
  };
  let signals = 0;
  /** Set while a second signal removes a rehearsal's throwaway: that handler alone reports, then exits, unless a third signal comes first. */
  let removing: { done: Promise<never>; leftAsIs: (by: string) => BelayError } | undefined;
  /**
   * A second signal: exit now, without waiting for the run (a down, a
   * restore), and say so truthfully: the run is left for `belay recover`
   * (exit 12), as its journal now says; before a run began, nothing changed (4);
   * a rehearsal's throwaway is removed first (4), else named (12).
   */
  const abandon = (signal: NodeJS.Signals): void => {
    const abandoned = run?.abandon(`a second ${signal}`) ?? { state: 'not-begun' as const };
    if (abandoned.state === 'ended') {
      progress.signalled(`${signal} again: the run has already recorded how it ended; its result follows`);
      return;
    }
    if (abandoned.state === 'removing') {
      removing = { done: abandoned.outcome.then((error) => stopped(error.exitCode, error.message, error.hint, error.details)), leftAsIs: abandoned.leftAsIs };
      return;
    }
    if (abandoned.state === 'cut') return stopped(abandoned.error.exitCode, abandoned.error.message, abandoned.error.hint, abandoned.error.details);
    if (abandoned.state === 'not-begun') {
      return stopped(EXIT.preflight, `stopped at once by a second ${signal}, before it began a run`, 'Nothing was changed; `belay status` says where the database stands.', {});
    }
    exiting = true;
    process.exit(leftAsItStands(abandoned.result));
  };
  /** A run abandoned at once: its result as far as known, printed (synchronously); its exit code. */
  const leftAsItStands = (result: RunResult): number => {
    progress.close();
    const said = envelopeOf(name, { result }, target);
    stdout.write(resultText(said, { result, human: (s) => formatRunResult(result, s) }));
    return said.exitCode;
  };
  /**
   * Code the run loaded (a module revision, a config file) ending the process
   * with process.exit before the command ended: the exit it asks for (0, or
   * none) would leave a run cut off halfway, with no word. The run is left
   * for `belay recover` as a second signal leaves it, and said so (12; 4
   * before a run began, nothing changed); the listener may only work synchronously.
   */
  const onExit = (): void => {
    if (exiting) return;
    const by = 'process.exit called by code belay loaded: a module revision or a config file';
    const abandoned = run?.abandon(by) ?? { state: 'not-begun' as const };
    if (abandoned.state === 'ended') return;
    if (abandoned.state === 'removing') {
      const left = abandoned.leftAsIs(by);
      return stopped(left.exitCode, left.message, left.hint, left.details);
    }
    if (abandoned.state === 'cut') return stopped(abandoned.error.exitCode, abandoned.error.message, abandoned.error.hint, abandoned.error.details);
    if (abandoned.state === 'not-begun') {
      return stopped(EXIT.preflight, `stopped by ${by}, before it began a run`, 'Nothing was changed; find what calls process.exit, then run the command again.', {});
    }
    process.exitCode = leftAsItStands(abandoned.result);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (removing) {
      // a third: exit now, naming what the removal may leave
      const left = removing.leftAsIs(`a third ${signal}`);
      return stopped(left.exitCode, left.message, left.hint, left.details);
    }
    if (signals > 1) return abandon(signal);
    if (question.open) {
      progress.signalled(`${signal} at the question: taken as no; nothing was changed`);
      return controller.abort();
    }
    progress.signalled(`${signal}: ${kind.firstSignal ?? 'stopping at the next safe point and rolling back what this run did; send it again to abort at once'}`);
    controller.abort();
  };
  // SIGHUP: the terminal closed (an SSH session dropped), taken as SIGTERM; the result still goes where stdout goes
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.on('exit', onExit);
  try {
    const report = await work(ctx);
    if (removing) await removing.done;
    progress.close();
    const said = envelopeOf(name, report, target);
    process.exitCode = said.exitCode;
    const written = await stdout.flush(resultText(said, report));
    if (!json && report.failed) writeErr([`belay: ${scrub(said.message, secrets)}`, ...nextLines(said).map((l) => scrub(l, secrets)), ''].join('\n'));
    if (!written) {
      // a command that only reads: its whole job was this output, not done (4); any other keeps its own exit code
      const onlyOutput = kind.reads === true && said.exitCode === EXIT.ok;
      if (onlyOutput) process.exitCode = EXIT.preflight;
      writeErr([lostResult(name, said, stdout.failure, onlyOutput), ...closing().map((line) => `${line}\n`)].join(''));
    }
  } catch (error) {
    if (removing) await removing.done;
    progress.close();
    const unsettled = run?.unsettled?.();
    const said = reportError(name, error, { json, secrets, target, closing: closing(), shown: progress.printed(errorMessage(error)), unsettled });
    process.exitCode = said.exitCode;
    // the document goes to stdout: once what was written before it is written, whether it could be is known
    if (json && !(await stdout.flush(''))) writeErr(lostResult(name, said, stdout.failure, false));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
    process.off('exit', onExit);
  }
}

const jsonText = (document: unknown, secrets: readonly string[]): string => `${JSON.stringify(scrub(document, secrets), null, 2)}\n`;

/**
 * A result that could not be written to stdout, said on stderr: how the
 * command ended (a run's outcome is true whether or not it was printed), and
 * where its result can be read again.
 */
function lostResult(command: string, said: Said, failure: Error | undefined, onlyOutput: boolean): string {
  const runId = said.result !== null && typeof said.result === 'object' && 'runId' in said.result && typeof said.result.runId === 'string' ? said.result.runId : undefined;
  const ended = onlyOutput ? 'nothing was changed' : `it ended ${said.outcome} (exit ${said.exitCode}): ${said.message}`;
  const next = runId
    ? `\`belay history ${runId}\` shows its result.`
    : onlyOutput
      ? 'Run it again with its output sent where it can be written.'
      : (said.next ?? 'Nothing needs running again: the line above says how it ended.');
  return `belay: ${command}: its result could not be written to stdout (${failure?.message ?? 'write failed'}); ${ended}\n  next: ${next}\n`;
}

/** The `next:` line, printed here for every command: what a result that ends 10, 11 or 12 always has. */
function nextLines(said: Said): string[] {
  return said.next ? [`  next: ${said.next}`] : [];
}

export function printJson(document: unknown, secrets: readonly string[]): void {
  output().stdout.write(jsonText(document, secrets));
}

interface ErrorReport {
  json: boolean;
  secrets: string[];
  target: TargetInfo | null;
  /** The last lines (the target). */
  closing: string[];
  /** The progress output already printed this error under its step. */
  shown: boolean;
  /** The run a bug stopped after it changed the database. */
  unsettled: { runId: string; journalFile: string } | undefined;
}

/** What to do after a bug: settle the run it left, if it left one, then report it. */
function bugHint(unsettled: ErrorReport['unsettled']): string {
  const report = 'report the bug';
  if (!unsettled) return `Nothing shows that the environment is at fault: ${report}; \`belay status\` says where the database stands.`;
  return `The run ${unsettled.runId} changed the database and did not finish: \`belay status\` says what \`belay recover\` will do to settle it (revert what it left applied, or restore its snapshot, then verify the data); run it, then ${report}.`;
}

function reportError(command: string, error: unknown, { json, secrets, target, closing, shown, unsettled }: ErrorReport): Said {
  const known = error instanceof BelayError;
  const exitCode = known ? error.exitCode : EXIT.internal;
  const message = scrub(errorMessage(error), secrets);
  const hint = known ? (error.hint ? scrub(error.hint, secrets) : undefined) : bugHint(unsettled);
  const details = known ? error.details : unsettled;
  const said = failureEnvelope(command, { exitCode, code: known ? error.code : 'internal', message, hint, details }, target);
  if (json) {
    printJson(documentOf(said), secrets);
  } else {
    output().stderr.write(`belay: ${shown ? `${outcomeOf(exitCode)} (the failure above)` : said.message}\n`);
    if (!shown) for (const line of said.details) output().stderr.write(`  ${line}\n`);
    if (said.journal) output().stderr.write(`  journal  ${scrub(said.journal, secrets)}\n`);
    for (const line of nextLines(said)) output().stderr.write(`${line}\n`);
    if (!known) {
      output().stderr.write(`  this is a bug in belay; please report it with this trace:\n${scrub(String((error as Error)?.stack ?? error), secrets)}\n`);
    }
    for (const line of closing) output().stderr.write(`${scrub(line, secrets)}\n`);
  }
  return said;
}
