import type { Command } from 'commander';
import { parseDatabaseUrl } from '../db/connection.js';
import { BelayError, EXIT, errorMessage } from '../errors.js';
import type { BelayOptions } from '../api/options.js';
import { globalFlags, type CliContext } from './context.js';
import { createLogger } from './logger.js';
import { scrub } from './scrub.js';
import { progressListener } from './progress.js';

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

/**
 * Run a command's work: build the library options from the global flags,
 * print its result, and turn its outcome into the contract's exit code.
 * The work returns the exit code it wants (0 unless its result says otherwise).
 */
export async function runAction(command: Command, work: (ctx: CliContext) => Promise<number | void>): Promise<void> {
  const flags = globalFlags(command);
  const json = flags.json === true;
  const secrets = secretsFrom(flags);
  const logger = createLogger(flags.logLevel, secrets);
  if (flags.databaseUrl && secrets.some((secret) => flags.databaseUrl?.includes(encodeURIComponent(secret)) || flags.databaseUrl?.includes(secret))) {
    logger.warn('--database-url carries a password, which every user of this machine can read in the process list: prefer DATABASE_URL, PGPASSWORD or a PGPASSFILE');
  }
  const controller = new AbortController();
  const options: BelayOptions = {
    env: process.env,
    onEvent: progressListener(logger, process.stderr.isTTY === true),
    signal: controller.signal,
  };
  if (flags.databaseUrl !== undefined) options.databaseUrl = flags.databaseUrl;
  if (flags.migrations !== undefined) options.migrations = flags.migrations;
  if (flags.backups !== undefined) options.backups = flags.backups;
  if (flags.config !== undefined) options.config = flags.config;
  const ctx: CliContext = {
    flags,
    json,
    options,
    print(result, human) {
      process.stdout.write(json ? `${JSON.stringify(scrub(result, secrets), null, 2)}\n` : `${scrub(human(), secrets)}\n`);
    },
  };
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
  try {
    process.exitCode = (await work(ctx)) ?? EXIT.ok;
  } catch (error) {
    process.exitCode = reportError(error, json, secrets);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function reportError(error: unknown, json: boolean, secrets: string[]): number {
  const known = error instanceof BelayError;
  const exitCode = known ? error.exitCode : EXIT.internal;
  const message = scrub(errorMessage(error), secrets);
  const hint = known && error.hint ? scrub(error.hint, secrets) : undefined;
  if (json) {
    const body = {
      ok: false,
      exitCode,
      error: { code: known ? error.code : 'internal', message, ...(hint ? { hint } : {}), ...(known ? { details: scrub(error.details, secrets) } : {}) },
    };
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  } else {
    process.stderr.write(`belay: ${message}\n`);
    if (hint) process.stderr.write(`  next: ${hint}\n`);
    if (!known) {
      process.stderr.write(`  this is a bug in belay; please report it with this trace:\n${scrub(String((error as Error)?.stack ?? error), secrets)}\n`);
    }
  }
  return exitCode;
}
