import type { Command } from 'commander';
import type { BelayOptions } from '../api/options.js';
import type { LogLevel } from './logger.js';

export interface GlobalFlags {
  databaseUrl?: string;
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
  /** Print the command's result: JSON on stdout with --json, else the human text. */
  print(result: unknown, human: () => string): void;
}

export function globalFlags(command: Command): GlobalFlags {
  return command.optsWithGlobals<GlobalFlags>();
}
