import { Command } from 'commander';
import { registerInspect } from './commands/inspect.js';
import { registerMigrate } from './commands/migrate.js';
import { registerCluster } from './commands/cluster.js';
import { registerRecover, registerRollback } from './commands/rollback.js';
import { registerBackups } from './commands/backups.js';
import { registerRehearse } from './commands/rehearse.js';
import { commandPath } from './context.js';
import { EVERYDAY, GLOBAL_OPTIONS } from './help.js';

export interface Program {
  program: Command;
  /** The command commander was parsing when it refused the line ("belay" when none was recognised). */
  parsing: () => string;
}

/** Every command and flag; parse errors throw (exitOverride) instead of exiting. */
export function buildProgram(): Program {
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

  let parsing = 'belay';
  program.commands.forEach(function exitOverrideAll(command: Command) {
    command.exitOverride((error) => {
      parsing = commandPath(command);
      throw error;
    });
    command.commands.forEach(exitOverrideAll);
  });
  program.exitOverride();
  return { program, parsing: () => parsing };
}
