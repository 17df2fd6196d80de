import { chmod, cp, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../src/cli/program.js';
import { belay, cleanEnv, ROOT } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { makeProject } from './support/project.js';

const DOCS = ['README.md', 'docs/ci.md'];

/** Shell words, with quotes; enough for the command lines the docs show. */
function words(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

/**
 * Every `belay …` command line in a document: in code blocks (a line that runs
 * belay, continuation lines joined, `$ `, `npx `, VAR=value and comments dropped)
 * and in inline code spans.
 */
function commandLines(markdown: string): string[] {
  const lines: string[] = [];
  const blocks = [...markdown.matchAll(/^```[^\n]*\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
  for (const block of blocks) {
    const joined = block.replace(/\n\s+(?=--)/g, ' ');
    for (const line of joined.split('\n')) {
      const match = /^\s*(?:-\s*run:\s*)?(?:\$\s+)?(?:[A-Z_]+=\S+\s+)*(?:npx\s+(?:-p\s+pg-belay\s+)?)?belay\s+([a-z-].*)$/.exec(line);
      if (match) lines.push(match[1]!.replace(/\s+#.*$/, '').trim());
    }
  }
  const prose = markdown.replace(/^```[^\n]*\n[\s\S]*?^```/gm, '');
  for (const span of prose.matchAll(/`(?:[A-Z_]+=\S+\s+)*(?:npx\s+(?:-p\s+pg-belay\s+)?)?belay\s+([a-z-][^`]*)`/g)) lines.push(span[1]!.replace(/\\\|/g, '|').trim());
  return lines;
}

/** Parse a command line with the real program, every action replaced: usage errors throw. */
async function parses(line: string): Promise<void> {
  const { program } = buildProgram();
  program.configureOutput({ writeOut: () => {}, writeErr: () => {} });
  (function stub(command: Command) {
    if (command.commands.length === 0) command.action(() => {});
    command.commands.forEach(stub);
  })(program);
  await program.parseAsync(words(line), { from: 'user' });
}

/** The shape of a shown output line: an absolute path is any path, a word with a digit (a count, a revision, an id) any such word. */
function shape(line: string): RegExp {
  const pattern = line
    .split(/(\/[^\s,;]+|[\w.-]*\d[\w.-]*)/)
    .map((part, i) => {
      if (i % 2 === 0) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      return part.startsWith('/') ? '/[^\\s,;]+' : '[\\w.-]*\\d[\\w.-]*';
    })
    .join('');
  return new RegExp(`^${pattern}$`);
}

describe('the docs do not lie', () => {
  it.each(DOCS)('every belay command line in %s parses', async (doc) => {
    const lines = commandLines(await readFile(join(ROOT, doc), 'utf8'));
    expect(lines.length).toBeGreaterThan(doc === 'README.md' ? 20 : 3);
    const refused: string[] = [];
    for (const line of lines) await parses(line).catch((error: Error) => refused.push(`belay ${line}: ${error.message}`));
    expect(refused).toEqual([]);
  });

  it('finds a command line that does not parse (the check can fail)', async () => {
    await expect(parses('migrate up --with-bakup')).rejects.toThrow(/unknown option/);
    await expect(parses('rollback')).rejects.toThrow(/--to/);
    expect(commandLines('```sh\nnpx -p pg-belay belay rehearse\n  --seed x.sql\n```\nsee `belay plan --to 0022`.')).toEqual(['rehearse --seed x.sql', 'plan --to 0022']);
  });

  it("the README's first screen shows what the commands really print", async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const block = /```console\n([\s\S]*?)```/.exec(readme)![1]!.trim().split('\n');
    const shown: Array<{ command: string; output: string }> = [];
    for (let i = 0; i < block.length; i += 2) {
      expect(block[i]).toMatch(/^\$ npx belay /);
      shown.push({ command: block[i]!.replace(/^\$ npx belay /, ''), output: block[i + 1]! });
    }
    expect(shown.map((s) => s.command)).toEqual(['migrate up --with-backup', 'rollback --to 0022', 'rehearse']);

    const db = await freshDatabase();
    const project = await makeProject({});
    await cp(join(ROOT, 'migrations'), project.migrations, { recursive: true });
    const tmp = join(project.dir, 'tmp');
    await mkdir(tmp);
    await chmod(tmp, 0o1777);
    for (const { command, output } of shown) {
      // the README's project: DATABASE_URL names the database; rehearse, which never touches it, runs without one
      // (its ephemeral cluster under a TMPDIR of its own, out of the way of the rehearse tests' leftover check)
      const env = cleanEnv(command === 'rehearse' ? { TMPDIR: tmp } : { DATABASE_URL: db.url });
      const run = await belay(['--yes', ...words(command)], { cwd: project.dir, env, timeoutMs: 300_000 });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout.split('\n')[0]).toMatch(shape(output));
    }
  }, 300_000);
});
