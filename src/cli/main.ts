#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { EXIT } from '../errors.js';
import { registerInspect } from './commands/inspect.js';
import { registerMigrate } from './commands/migrate.js';
import { registerCluster } from './commands/cluster.js';
import { registerRecover, registerRollback } from './commands/rollback.js';
import { registerBackups } from './commands/backups.js';
import { registerRehearse } from './commands/rehearse.js';
import { commandPath } from './context.js';
import { failureEnvelope } from './envelope.js';
import { EVERYDAY, GLOBAL_OPTIONS } from './help.js';
import { printJson } from './run-action.js';

const program = new Command('belay')
  .description('PostgreSQL migrations that catch their own falls: backup → migrate → verify → roll back → restore')
  .version('0.1.0')
  .showHelpAfterError('(add --help for usage)')
  .addHelpText('after', EVERYDAY);
for (const option of Object.values(GLOBAL_OPTIONS)) program.addOption(option);

registerInspect(program);
registerMigrate(program);
registerRollback(program);
registerRecover(program);
registerBackups(program);
registerRehearse(program);
registerCluster(program);

/** The command commander was parsing when it refused the line, for the --json envelope. */
let parsing = 'belay';
program.commands.forEach(function exitOverrideAll(command: Command) {
  command.exitOverride((error) => {
    parsing = commandPath(command);
    throw error;
  });
  command.commands.forEach(exitOverrideAll);
});
program.exitOverride();

/** --json anywhere before `--`: a usage error is a JSON document too. */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    const ok = error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help';
    process.exitCode = ok ? EXIT.ok : EXIT.usage;
    if (!ok && wantsJson(process.argv.slice(2))) {
      const hint = `Run \`belay ${parsing === 'belay' ? '' : `${parsing} `}--help\` for its options and an example.`;
      const message = error.message.replace(/^error: /, '');
      printJson(failureEnvelope(parsing, { exitCode: EXIT.usage, code: error.code, message, hint, details: {} }, null), []);
    }
  } else {
    process.stderr.write(`belay: ${String(error)}\n`);
    process.exitCode = EXIT.internal;
  }
}
