import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../src/cli/program.js';
import { belay } from './support/cli.js';

function leaves(command: Command, path: string[] = []): string[][] {
  if (command.commands.length === 0) return [path];
  return command.commands.flatMap((sub) => leaves(sub, [...path, sub.name()]));
}

/** Every command of the program, command groups and the program itself included. */
function everyCommand(command: Command, path: string[] = []): string[][] {
  return [path, ...command.commands.flatMap((sub) => everyCommand(sub, [...path, sub.name()]))];
}

describe('help that teaches', () => {
  it('belay --help ends with the three everyday commands', async () => {
    const run = await belay(['--help']);
    expect(run.code).toBe(0);
    const tail = run.stdout.trim().split('\n').slice(-4);
    expect(tail[0]).toBe('Everyday:');
    expect(tail.slice(1).map((line) => line.trim().split(/\s{2,}/)[0])).toEqual(['$ belay migrate up --with-backup', '$ belay rollback --to 0022', '$ belay rehearse']);
  });

  it('belay --help to a pipe, printed from the text the build took, is what the CLI itself prints now', async () => {
    const written = await belay(['--help']);
    // `help` and `-h` after another flag are parsed by commander at run time
    for (const args of [['help'], ['--yes', '-h']]) {
      const live = await belay(args);
      expect(live.code, args.join(' ')).toBe(0);
      expect(written.stdout, args.join(' ')).toBe(live.stdout);
    }
    // and it is this source's program, not an older build's
    expect(written.stdout.startsWith(buildProgram().program.helpInformation())).toBe(true);
  });

  it('every command shows the global options it honours and one example', async () => {
    const commands = leaves(buildProgram().program);
    expect(commands.length).toBeGreaterThan(15);
    for (const words of commands) {
      const run = await belay([...words, '--help']);
      expect(run.code, words.join(' ')).toBe(0);
      expect(run.stdout, words.join(' ')).toMatch(/\nGlobal options it honours \(before or after the command\):\n(  --[a-z-]+.*\n)+\nExample:\n  \$ .*belay /);
      expect(run.stdout).toContain('--json');
    }
  });

  it('every command and command group ends its --help with an example', async () => {
    const commands = everyCommand(buildProgram().program);
    expect(commands).toContainEqual(['cluster']);
    for (const words of commands) {
      const run = await belay([...words, '--help']);
      expect(run.code, words.join(' ')).toBe(0);
      expect(run.stdout, words.join(' ')).toMatch(/\n(Example|Everyday):\n {2}\$ .*\bbelay /);
    }
  });

  it('help names a command inside a group as --help does: help migrate up, migrate help up', async () => {
    const flag = await belay(['migrate', 'up', '--help']);
    for (const words of [['help', 'migrate', 'up'], ['migrate', 'help', 'up']]) {
      const run = await belay(words);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toBe(flag.stdout);
    }
    const unknown = await belay(['help', 'migrate', 'nosuch']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe((await belay(['migrate', 'nosuch'])).stderr);
  });
});
