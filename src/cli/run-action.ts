import type { Command } from 'commander';
import type { TargetInfo } from '../api/options.js';
import { parseDatabaseUrl } from '../db/connection.js';
import { BelayError, EXIT, errorMessage } from '../errors.js';
import type { BelayOptions } from '../api/options.js';
import { commandPath, globalFlags, type CliContext, type CommandReport } from './context.js';
import { envelopeOf, failureEnvelope, outcomeOf } from './envelope.js';
import { createLogger, type LogLevel } from './logger.js';
import { scrub } from './scrub.js';
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
  const secrets = secretsFrom(flags);
  const logger = createLogger(flags.logLevel, secrets);
  if (flags.databaseUrl && secrets.some((secret) => flags.databaseUrl?.includes(encodeURIComponent(secret)) || flags.databaseUrl?.includes(secret))) {
    logger.warn('--database-url carries a password, which every user of this machine can read in the process list: prefer DATABASE_URL, PGPASSWORD or a PGPASSFILE');
  }
  const level = progressLevel(flags.logLevel);
  const writeErr = (text: string): void => void process.stderr.write(scrub(text, secrets));
  const progress = progressPrinter({ write: writeErr, tty: process.stderr.isTTY === true, level });
  let target: TargetInfo | null = null;
  const controller = new AbortController();
  const options: BelayOptions = {
    env: process.env,
    onEvent: progress.listener,
    onTarget: (resolved) => {
      target = resolved;
      if (kind.changing && level === 'all') writeErr(`${firstLine(name, resolved)}\n`);
    },
    signal: controller.signal,
  };
  if (flags.databaseUrl !== undefined) options.databaseUrl = flags.databaseUrl;
  if (flags.embedded) options.embedded = true;
  if (flags.migrations !== undefined) options.migrations = flags.migrations;
  if (flags.backups !== undefined) options.backups = flags.backups;
  if (flags.config !== undefined) options.config = flags.config;
  const ctx: CliContext = { flags, json, options, task: progress.task };
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.error(`${signal} again: aborting at once; run \`belay recover\` to settle the database`);
      process.exit(130);
    }
    logger.warn(`${signal}: stopping at the next safe point and rolling back what this run did; send it again to abort at once`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const closing = (): string[] => (kind.changing && target ? [lastLine(target)] : []);
  try {
    const report = await work(ctx);
    progress.close();
    const envelope = envelopeOf(name, report, target);
    if (json) printJson(envelope, secrets);
    else {
      process.stdout.write(`${scrub(report.human(), secrets)}\n`);
      if (report.failure) writeErr(`belay: ${report.failure.message}\n${report.failure.next ? `  next: ${report.failure.next}\n` : ''}`);
      const last = closing();
      if (last.length > 0) process.stdout.write(`${scrub(last.join('\n'), secrets)}\n`);
    }
    process.exitCode = envelope.exitCode;
  } catch (error) {
    progress.close();
    process.exitCode = reportError(name, error, { json, secrets, target, closing: closing(), shown: progress.printed(errorMessage(error)) });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function printJson(document: unknown, secrets: readonly string[]): void {
  process.stdout.write(`${JSON.stringify(scrub(document, secrets), null, 2)}\n`);
}

interface ErrorReport {
  json: boolean;
  secrets: string[];
  target: TargetInfo | null;
  /** The last lines (the target). */
  closing: string[];
  /** The progress output already printed this error under its step. */
  shown: boolean;
}

function reportError(command: string, error: unknown, { json, secrets, target, closing, shown }: ErrorReport): number {
  const known = error instanceof BelayError;
  const exitCode = known ? error.exitCode : EXIT.internal;
  const message = scrub(errorMessage(error), secrets);
  const hint = known && error.hint ? scrub(error.hint, secrets) : undefined;
  if (json) {
    printJson(failureEnvelope(command, { exitCode, code: known ? error.code : 'internal', message, hint, details: known ? error.details : undefined }, target), secrets);
  } else {
    process.stderr.write(`belay: ${shown ? `${outcomeOf(exitCode)} (the failure above)` : message}\n`);
    if (hint) process.stderr.write(`  next: ${hint}\n`);
    if (!known) {
      process.stderr.write(`  this is a bug in belay; please report it with this trace:\n${scrub(String((error as Error)?.stack ?? error), secrets)}\n`);
    }
    for (const line of closing) process.stderr.write(`${scrub(line, secrets)}\n`);
  }
  return exitCode;
}
