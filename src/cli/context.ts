import type { Command } from 'commander';
import type { BelayOptions } from '../api/options.js';
import type { Report, Said } from './envelope.js';
import type { LogLevel } from './logger.js';
import { GLOBAL_OPTIONS, honoured, type GlobalOptionName } from './help.js';

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
  /** Ask before changing, on a terminal without --yes (else undefined); a signal while it asks answers no. */
  confirm: ((summary: string) => Promise<boolean>) | undefined;
}

/**
 * What a command's work hands back: the envelope's facts and its text for a
 * terminal, made from what the envelope says (its one-line message, the
 * lines beyond it); the `next:` line is added after it by runAction.
 */
export interface CommandReport extends Report {
  human: (said: Said) => string;
  /** A failure that still showed a result (history with the database out of reach): its message and next go to stderr after the text. */
  failed?: boolean;
}

/** The global flags the command honours (its teach() declaration, which its --help lists); the others are left out. */
export function globalFlags(command: Command): GlobalFlags {
  const all = command.optsWithGlobals<GlobalFlags & Record<string, unknown>>();
  const honours = honoured(command);
  for (const [name, option] of Object.entries(GLOBAL_OPTIONS)) {
    if (!honours.has(name as GlobalOptionName)) delete all[option.attributeName()];
  }
  return all;
}

/** Every global flag given, honoured or not: secrets in any of them are scrubbed from the output. */
export function givenFlags(command: Command): { databaseUrl?: string } {
  return command.optsWithGlobals<{ databaseUrl?: string }>();
}

/** "migrate up", "backups prune": the command's words without the program name. */
export function commandPath(command: Command): string {
  const words: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) words.unshift(c.name());
  return words.join(' ') || 'belay';
}
