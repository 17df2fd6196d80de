import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { belay, CLI, cleanEnv } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { GOOD_REVISIONS, makeProject } from './support/project.js';

const ESC = String.fromCharCode(27);

/** Run belay on a real pseudo-terminal (util-linux `script`), answering everything it wrote there. */
function onTerminal(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<{ code: number | null; output: string }> {
  const quoted = [process.execPath, CLI, ...args].map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(' ');
  const child = spawn('script', ['-qfec', quoted, '/dev/null'], { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('progress on stderr', () => {
  it('on a terminal, a revision running longer than 2 s shows a ticking elapsed time, then its ok line', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_slow.up.sql': 'SELECT pg_sleep(4);\nCREATE TABLE slow (id int);',
      '0001_slow.down.sql': 'DROP TABLE slow;',
    });
    const run = await onTerminal(['migrate', 'up'], { cwd: project.dir, env: cleanEnv({ DATABASE_URL: db.url }) });
    expect(run.code, run.output).toBe(0);
    // the live line is redrawn in place (carriage return, erase line) with the time so far
    const ticks = [...run.output.matchAll(new RegExp(`\\r${ESC}\\[K\\+ 0001_slow \\.\\. (\\d+\\.\\d) s`, 'g'))].map((m) => Number(m[1]));
    expect(ticks.length, run.output).toBeGreaterThanOrEqual(2);
    expect(ticks[0]).toBeGreaterThanOrEqual(2);
    expect(ticks.at(-1)).toBeGreaterThan(ticks[0]!);
    expect(run.output).toMatch(new RegExp(`\\r${ESC}\\[K\\+ 0001_slow \\.\\. ok \\(4\\.\\d s\\)\\r?\\n`));
    expect(run.output.split(/\r?\n/)[0]).toMatch(/^belay migrate up on belay_app@.*\/t\S* \(from DATABASE_URL\)$/);
  });

  it('off a terminal, plain lines: each step as it starts and ends, no control characters', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const run = await belay(['migrate', 'up', '--with-backup'], { cwd: project.dir, env: cleanEnv({ DATABASE_URL: db.url }) });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toContain(ESC);
    expect(run.stderr).not.toContain('\r');
    const lines = run.stderr.split('\n');
    expect(lines[0]).toMatch(/^belay migrate up on belay_app@.* \(from DATABASE_URL\)$/);
    for (const revision of ['0001_accounts', '0002_profiles', '0003_accounts_name']) {
      expect(lines).toContain(`+ ${revision} ..`);
      expect(lines.some((line) => new RegExp(`^\\+ ${revision} \\.\\. ok \\(\\d+ ms\\)$`).test(line))).toBe(true);
    }
    expect(lines.some((line) => /^· backup \.\. ok \(/.test(line))).toBe(true);
    expect(run.stdout.trim().split('\n').at(-1)).toMatch(/^target belay_app@\S+, from DATABASE_URL$/);
  });

  it('a failure is printed once, with PostgreSQL DETAIL', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_dupes.up.sql': 'CREATE TABLE dupes (id int PRIMARY KEY);\nINSERT INTO dupes VALUES (1), (1);',
      '0001_dupes.down.sql': 'DROP TABLE dupes;',
    });
    const run = await belay(['migrate', 'up'], { cwd: project.dir, env: cleanEnv({ DATABASE_URL: db.url }) });
    expect(run.code, run.stderr).toBe(10);
    expect(run.stderr).toMatch(/^\+ 0001_dupes \.\. failed \(\d+ ms\)$/m);
    expect(run.stderr.match(/DETAIL: Key \(id\)=\(1\) already exists\./g)).toHaveLength(1);
    expect(run.stderr.match(/duplicate key value violates unique constraint/g)).toHaveLength(1);
    expect(run.stderr).toMatch(/down: rolling back to the start: \(the failure above\)/);
 
    // a refusal too: under its step, then the outcome and what to do
    const project2 = await makeProject({ '0001_oneway.up.sql': 'CREATE TABLE oneway (id int);' });
    const refused = await belay(['migrate', 'up'], { cwd: project2.dir, env: cleanEnv({ DATABASE_URL: db.url }) });
    expect(refused.code, refused.stderr).toBe(4);
    expect(refused.stderr.match(/revisions without a down: 0001_oneway/g)).toHaveLength(1);
    expect(refused.stderr).toMatch(/^belay: refused \(the failure above\)\n {2}journal {2}\S+\/journal\/[\w-]+\.jsonl\n {2}next: Add the missing down files/m);
    expect(refused.stderr.trim().split('\n').at(-1)).toMatch(/^target belay_app@\S+, from DATABASE_URL$/);
  });
});
