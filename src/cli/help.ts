import { Option, type Command } from 'commander';
import { nonEmptyFlag } from './parse.js';

/** The global options, defined once: program.ts adds them, every command's help lists the ones it honours. */
export const GLOBAL_OPTIONS = {
  'database-url': new Option('--database-url <url>', 'target database (else DATABASE_URL, databaseUrl in the config, the PG* variables, or the embedded cluster)').argParser(nonEmptyFlag('--database-url')),
  embedded: new Option('--embedded', 'use the project-local cluster under .belay/ explicitly (needed under CI=true for a changing command)'),
  migrations: new Option('--migrations <dir>', 'revisions folder (default ./migrations)').argParser(nonEmptyFlag('--migrations')),
  backups: new Option('--backups <dir>', 'snapshots and journal folder (default ./backups)').argParser(nonEmptyFlag('--backups')),
  config: new Option('--config <file>', 'config file (default belay.config.{ts,js,mjs,json} when present)').argParser(nonEmptyFlag('--config')),
  json: new Option('--json', 'print one JSON document on stdout (docs/json.md); progress and logs go to stderr'),
  'log-level': new Option('--log-level <level>', 'progress and log detail on stderr').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'),
  yes: new Option('--yes', 'never prompt (prompts never block without a terminal anyway)'),
} as const;

export type GlobalOptionName = keyof typeof GLOBAL_OPTIONS;

/** What a command that opens the target database honours. */
export const CONNECTED: GlobalOptionName[] = ['database-url', 'embedded', 'migrations', 'backups', 'config', 'json', 'log-level'];
export const FILES_ONLY: GlobalOptionName[] = ['backups', 'config', 'json', 'log-level'];
/** Every command prints through runAction, which reads these. */
const EVERY_COMMAND: GlobalOptionName[] = ['json', 'log-level'];

const HONOURS = new WeakMap<Command, ReadonlySet<GlobalOptionName>>();

/**
 * The global options a command honours, as its teach() call declared them:
 * its --help lists exactly these, and its action reads only these
 * (globalFlags() leaves the others out), so the two cannot disagree.
 */
export function honoured(command: Command): ReadonlySet<GlobalOptionName> {
  return HONOURS.get(command) ?? new Set(Object.keys(GLOBAL_OPTIONS) as GlobalOptionName[]);
}

/** Every command's --help ends with the global options it honours and one example. */
export function teach(command: Command, honours: readonly GlobalOptionName[], example: string): Command {
  const declared = new Set([...honours, ...EVERY_COMMAND]);
  HONOURS.set(command, declared);
  // in GLOBAL_OPTIONS' order
  const options = (Object.keys(GLOBAL_OPTIONS) as GlobalOptionName[]).filter((name) => declared.has(name)).map((name) => GLOBAL_OPTIONS[name]);
  const width = Math.max(...options.map((o) => o.flags.length));
  const lines = options.map((o) => `  ${o.flags.padEnd(width)}  ${o.description}`);
  return command.addHelpText('after', `\nGlobal options it honours (before or after the command):\n${lines.join('\n')}\n${exampleText(example)}`);
}

/** A command group's --help (`belay migrate --help`) ends with one example of its commands. */
export function teachGroup(group: Command, example: string): Command {
  return group.addHelpText('after', exampleText(example));
}

const exampleText = (example: string): string => `\nExample:\n  $ ${example}\n`;

export const EVERYDAY = `
Everyday:
  $ belay migrate up --with-backup   snapshot, apply, verify; rolled back or restored on failure
  $ belay rollback --to 0022         down to 0022, checked against what the downs must not change
  $ belay rehearse                   up / down / up every pending revision on a throwaway database (CI)
`;
