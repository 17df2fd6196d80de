#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { EXIT } from '../errors.js';
import { registerInspect } from './commands/inspect.js';
import { registerMigrate } from './commands/migrate.js';
import { registerCluster } from './commands/cluster.js';
import { registerRecover, registerRollback } from './commands/rollback.js';
import { registerBackups } from './commands/backups.js';
import { registerRehearse } from './commands/rehearse.js';

const program = new Command('belay')
  .description('PostgreSQL migrations that catch their own falls: backup → migrate → verify → roll back → restore')
  .version('0.1.0')
  .option('--database-url <url>', 'target database (else DATABASE_URL, the PG* variables, or the embedded cluster)')
  .option('--migrations <dir>', 'revisions folder (default ./migrations)')
  .option('--backups <dir>', 'snapshots and journal folder (default ./backups)')
  .option('--config <file>', 'config file (default belay.config.{ts,js,mjs,json} when present)')
  .option('--json', 'print one JSON result document on stdout; logs go to stderr')
  .addOption(new Option('--log-level <level>', 'log detail').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'))
  .option('--yes', 'never prompt')
  .showHelpAfterError('(run `belay --help` for usage)')
  .exitOverride();

registerInspect(program);
registerMigrate(program);
registerRollback(program);
registerRecover(program);
registerBackups(program);
registerRehearse(program);
registerCluster(program);

program.commands.forEach(function exitOverrideAll(command: Command) {
  command.exitOverride();
  command.commands.forEach(exitOverrideAll);
});

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    const ok = error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help';
    process.exitCode = ok ? EXIT.ok : EXIT.usage;
  } else {
    process.stderr.write(`belay: ${String(error)}\n`);
    process.exitCode = EXIT.internal;
  }
}
