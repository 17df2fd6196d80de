import { CommanderError } from 'commander';
import { EXIT } from '../errors.js';
import { documentOf, failureEnvelope } from './envelope.js';
import { output } from './output.js';
import { buildProgram } from './program.js';
import { printJson } from './run-action.js';

/** --json anywhere before `--`: a usage error is a JSON document too. */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
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
      const args = process.argv.slice(2);
      if (!ok && wantsJson(args)) {
        const command = parsing(args);
        const hint = `Run \`belay ${command === 'belay' ? '' : `${command} `}--help\` for its options and an example.`;
        const message = error.code === 'commander.help' ? `${command} needs a command (see --help)` : error.message.replace(/^error: /, '');
        printJson(documentOf(failureEnvelope(command, { exitCode: EXIT.usage, code: error.code, message, hint, details: {} }, null)), []);
      }
    } else {
      stderr.write(`belay: ${String(error)}\n`);
      process.exitCode = EXIT.internal;
    }
  }
}

void runCli();
