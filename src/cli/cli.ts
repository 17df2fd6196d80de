import { CommanderError, type Command } from 'commander';
import { EXIT } from '../errors.js';
import { commandPath } from './context.js';
import { documentOf, failureEnvelope } from './envelope.js';
import { output } from './output.js';
import { buildProgram } from './program.js';
import { printJson } from './run-action.js';

/** --json anywhere before `--`: a usage error is a JSON document too. */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

/** What to do after commander refused a line: name a command of a group given alone, else read the command's --help. */
function usageHint(command: Command, code: string): string {
  const name = commandPath(command);
  if (code === 'commander.help' && command.parent === null) return 'Name a command: `belay status` says where the database stands, `belay --help` lists every command.';
  if (code === 'commander.help') {
    const subcommands = command.commands.filter((sub) => sub.name() !== 'help').map((sub) => `\`belay ${name} ${sub.name()}\``);
    return `Name one of its commands (${subcommands.join(', ')}); \`belay ${name} --help\` says what each does.`;
  }
  return `Run \`belay ${name === 'belay' ? '' : `${name} `}--help\` for its options and an example.`;
}

/** Parse the command line and run the command; the exit code is left in process.exitCode. */
async function runCli(): Promise<void> {
  // before anything is written (commander's help and errors too): output that cannot be written never ends the process
  const { stderr } = output();
  const { program, parsing } = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander.help with exit code 1: a command group was given without its subcommand (`belay`, `belay migrate`)
      const ok = error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || (error.code === 'commander.help' && error.exitCode === 0);
      process.exitCode = ok ? EXIT.ok : EXIT.usage;
      if (!ok) {
        const args = process.argv.slice(2);
        const command = parsing(args);
        const name = commandPath(command);
        const message = error.code === 'commander.help' ? `${name} needs a command (see --help)` : error.message.replace(/^error: /, '');
        const said = failureEnvelope(name, { exitCode: EXIT.usage, code: error.code, message, hint: usageHint(command, error.code), details: {} }, null);
        // commander has written its error (or the help) to stderr: the text ends with next:, as every failure does
        if (wantsJson(args)) printJson(documentOf(said), []);
        else stderr.write(`  next: ${said.next}\n`);
      }
    } else {
      stderr.write(`belay: ${String(error)}\n`);
      process.exitCode = EXIT.internal;
    }
  }
}

void runCli();
