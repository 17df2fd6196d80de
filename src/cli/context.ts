import type { Command } from 'commander';
import type { BelayOptions } from '../api/options.js';
import type { Report } from './envelope.js';
import type { LogLevel } from './logger.js';

export interface GlobalFlags {
  databaseUrl?: string;
  embedded?: boolean;
  migrations?: string;
  backups?: string;
  config?: string;
  json?: boolean;
  logLevel: LogLevel;
  yes?: boolean;
}

/** What every command action gets: the global flags and the library options they make. */
export interface CliContext {
  flags: GlobalFlags;
  json: boolean;
  options: BelayOptions;
  /** Show long work that reports no steps of its own as one ticking line on a terminal. */
  task: <T>(label: string, work: () => Promise<T>) => Promise<T>;
}

/** What a command's work hands back: the envelope's facts and its text for a terminal. */
export interface CommandReport extends Report {
  human: () => string;
  /** Printed on stderr after the text (not under --json, whose envelope has the message and next): a failure that still showed a result. */
  failure?: { message: string; next: string | undefined };
}

export function globalFlags(command: Command): GlobalFlags {
  return command.optsWithGlobals<GlobalFlags>();
}

/** "migrate up", "backups prune": the command's words without the program name. */
export function commandPath(command: Command): string {
  const words: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) words.unshift(c.name());
  return words.join(' ') || 'belay';
}
