import { Command } from 'commander';
import { registerInspect } from './commands/inspect.js';
import { registerMigrate } from './commands/migrate.js';
import { registerCluster } from './commands/cluster.js';
import { registerRecover, registerRollback } from './commands/rollback.js';
import { registerBackups } from './commands/backups.js';
import { registerRehearse } from './commands/rehearse.js';
import { EVERYDAY, GLOBAL_OPTIONS, teach } from './help.js';
import { refuseRepeats } from './parse.js';

export interface Program {
  program: Command;
  /**
   * The command of a line commander refused: the one it was parsing, or the
   * one the words of `args` name when the refusal came before it (a global
   * option's bad value is refused by the program itself); the program when
   * none was recognised.
   */
  parsing: (args: readonly string[]) => Command;
}

/** The command the words of `args` name, as far as they name one. */
function typedCommand(program: Command, args: readonly string[]): Command {
  let command = program;
  for (const arg of args) {
    if (arg === '--') break;
    command = command.commands.find((sub) => sub.name() === arg || sub.aliases().includes(arg)) ?? command;
  }
  return command;
}

/** Every command and flag; parse errors throw (exitOverride) instead of exiting, an option's repeat with another value among them. */
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

  let parsing: Command | undefined;
  /**
   * `help [command]` of the program and of each group, in place of
   * commander's, which answered a name that is no command (`belay help
   * nosuch`) with the group's help, as if no command had been named.
   */
  const addHelpCommand = (group: Command): void => {
    group.commands.forEach(addHelpCommand);
    if (group.commands.length === 0) return;
    const help = group.command('help [command...]').description('display help for command (a group\'s command too: help migrate up)');
    group.helpCommand(false);
    teach(help, [], `belay ${group.parent ? `${group.name()} ` : ''}help ${group.commands[0]!.name()}`).action((names: string[]) => {
      let named = group;
      for (const name of names) {
        const sub = named.commands.find((command) => command.name() === name || command.aliases().includes(name));
        if (!sub) {
          parsing = named;
          return named.error(`error: unknown command '${name}'`, { code: 'commander.unknownCommand' });
        }
        named = sub;
      }
      return named.help();
    });
  };
  addHelpCommand(program);
  program.commands.forEach(function exitOverrideAll(command: Command) {
    command.exitOverride((error) => {
      parsing = command;
      throw error;
    });
    refuseRepeats(command);
    command.commands.forEach(exitOverrideAll);
  });
  program.exitOverride();
  refuseRepeats(program);
  return { program, parsing: (args) => parsing ?? typedCommand(program, args) };
}
