#!/usr/bin/env node
// The `belay` command. It prints the top-level help the build wrote down
// (`belay --help` with output to a pipe or file) or runs the bundled CLI from
// its code cache; see scripts/build.mjs.
import { fileURLToPath } from 'node:url';
import { loadCliScript } from './cli-script.js';

/** `belay --help` as commander prints it to a non-terminal (80 columns), taken from the built CLI by the build. */
declare const BELAY_ROOT_HELP: string;

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--help' || args[0] === '-h') && process.stdout.isTTY !== true) {
  // help that cannot be written (a full disk, a closed pipe): exit 4, as any command whose only job is its output
  process.stdout.on('error', (error) => {
    process.exitCode = 4;
    process.stderr.on('error', () => {});
    process.stderr.write(`belay: the help could not be written to stdout (${error.message})\n`);
  });
  process.stdout.write(BELAY_ROOT_HELP);
} else {
  loadCliScript(fileURLToPath(new URL('belay.js', import.meta.url)), fileURLToPath(new URL('belay.js.cache', import.meta.url))).run();
}
