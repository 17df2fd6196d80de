import { spawn, type StdioOptions } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { belay, CLI, cleanEnv, jsonResult, type CliRun } from './support/cli.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

// Output that cannot be written (a reader that went away, a full disk) must never end or change a run.

const REVISIONS: Record<string, string> = {
  '0001_base.up.sql': 'CREATE TABLE base (id int PRIMARY KEY, v text);\nINSERT INTO base SELECT g, md5(g::text) FROM generate_series(1, 500) g;',
  '0001_base.down.sql': 'DROP TABLE base;',
  '0002_a.up.sql': 'CREATE TABLE a (id int);',
  '0002_a.down.sql': 'DROP TABLE a;',
  // each a little slow, so that the run writes its progress lines after the reader went away
  '0003_b.up.sql': 'CREATE TABLE b (id int);\nSELECT pg_sleep(0.2);',
  '0003_b.down.sql': 'DROP TABLE b;',
  '0004_c.up.sql': 'CREATE TABLE c (id int);\nSELECT pg_sleep(0.2);',
  '0004_c.down.sql': 'DROP TABLE c;',
  '0005_d.up.sql': 'CREATE TABLE d (id int);\nSELECT pg_sleep(0.2);',
  '0005_d.down.sql': 'DROP TABLE d;',
};

interface Spawned {
  run: Promise<CliRun>;
}

/**
 * Run the CLI with stdout and stderr as given: 'pipe' ends are read here.
 * `closeAfterFirstLine`: destroy the reading ends of the pipes once the
 * first line came through (as `2>&1 | head -1` does); `closeAtOnce`: before
 * the CLI has written anything.
 */
function spawnBelay(args: string[], cwd: string, stdio: StdioOptions, how: 'closeAfterFirstLine' | 'closeStderrAtOnce' | 'keep', env = cleanEnv()): Spawned {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env, stdio });
  let stdout = '';
  let stderr = '';
  let seen = '';
  const closeReaders = (): void => {
    child.stdout?.destroy();
    child.stderr?.destroy();
  };
  const onData = (into: 'stdout' | 'stderr') => (chunk: Buffer) => {
    if (into === 'stdout') stdout += chunk.toString();
    else stderr += chunk.toString();
    seen += chunk.toString();
    if (how === 'closeAfterFirstLine' && seen.includes('\n')) closeReaders();
  };
  child.stdout?.on('data', onData('stdout'));
  child.stderr?.on('data', onData('stderr'));
  if (how === 'closeStderrAtOnce') child.stderr?.destroy();
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const run = new Promise<CliRun>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { run };
}

async function at0002(): Promise<{ db: TestDatabase; project: TestProject; args: string[] }> {
  const db = await freshDatabase();
  const project = await makeProject(REVISIONS);
  const args = baseArgs(project, db.url);
  expect((await belay([...args, 'migrate', 'up', '--to', '0002'], { cwd: project.dir })).code).toBe(0);
  return { db, project, args };
}

/** The run finished, recorded as finished: all five applied, no interrupted run, the journal's outcome ok. */
async function expectFinished(db: TestDatabase, project: TestProject, args: string[]): Promise<void> {
  expect((await db.query('SELECT name FROM belay.migrations ORDER BY name')).map((r) => r.name)).toEqual(['0001_base', '0002_a', '0003_b', '0004_c', '0005_d']);
  const status = jsonResult(await belay([...args, '--json', 'status'], { cwd: project.dir })) as { interrupted: unknown; current: string; lastRun: { runId: string; status: string; exitCode: number } };
  expect(status.interrupted).toBeNull();
  expect(status.current).toBe('0005_d');
  expect(status.lastRun).toMatchObject({ status: 'ok', exitCode: 0 });
  const journal = await readFile(`${project.backups}/journal/${status.lastRun.runId}.jsonl`, 'utf8');
  expect(journal).toMatch(/"type":"outcome".*"status":"ok","exitCode":0/);
}

describe('output that cannot be written', () => {
  it('`migrate up --with-backup 2>&1 | head -1`: the reader goes away after the first line; the run goes on to its outcome (exit 0)', async () => {
    const { db, project, args } = await at0002();
    // the connection from DATABASE_URL: the first line is the target's (with --database-url, a warning about its password)
    const { run } = spawnBelay(['--migrations', project.migrations, '--backups', project.backups, 'migrate', 'up', '--with-backup'], project.dir, ['ignore', 'pipe', 'pipe'], 'closeAfterFirstLine', cleanEnv({ DATABASE_URL: db.url }));
    const result = await run;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr.split('\n')[0]).toMatch(/^belay migrate up on /);
    await expectFinished(db, project, args);
  });

  it('`migrate up --with-backup --json 2>&1 >out.json | head`: stderr closed before anything is written (a log line first); the one JSON document still comes on stdout', async () => {
    const { db, project, args } = await at0002();
    // the password in --database-url makes a warning the first thing written to stderr (a pino log line)
    const { run } = spawnBelay([...args, '--json', 'migrate', 'up', '--with-backup'], project.dir, ['ignore', 'pipe', 'pipe'], 'closeStderrAtOnce');
    const result = await run;
    expect(result.code).toBe(0);
    const envelope = JSON.parse(result.stdout) as { exitCode: number; outcome: string; result: { revisions: Array<{ name: string; status: string }> } };
    expect(envelope).toMatchObject({ exitCode: 0, outcome: 'ok' });
    expect(envelope.result.revisions.map((r) => `${r.name} ${r.status}`)).toEqual(['0003_b applied', '0004_c applied', '0005_d applied']);
    await expectFinished(db, project, args);
  });

  it('`status > /dev/full`: exit 4 with a short message on stderr, no stack trace; the same for --json and for the top-level help', async () => {
    const { project, args } = await at0002();
    const full = openSync('/dev/full', 'w');
    try {
      for (const extra of [[], ['--json']]) {
        const result = await spawnBelay([...args, ...extra, 'status'], project.dir, ['ignore', full, 'pipe'], 'keep').run;
        expect(result.code, `${extra.join(' ')}: ${result.stderr}`).toBe(4);
        expect(result.stderr).toMatch(/^belay: status: its result could not be written to stdout \(ENOSPC: no space left on device, write\); nothing was changed\n {2}next: Run it again with its output sent where it can be written\.\n$/m);
        expect(result.stderr).not.toMatch(/\n\s+at /);
      }
      const list = await spawnBelay([...args, 'backups', 'list'], project.dir, ['ignore', full, 'pipe'], 'keep').run;
      expect(list.code, list.stderr).toBe(4);
      expect(list.stderr).toMatch(/^belay: backups list: its result could not be written to stdout \(ENOSPC: no space left on device, write\); nothing was changed\n {2}next: Run it again with its output sent where it can be written\.\n$/m);
      // a failure's document is a result too: its own exit code, said on stderr
      const usage = await spawnBelay([...args, '--json', 'plan', '--to', '0099'], project.dir, ['ignore', full, 'pipe'], 'keep').run;
      expect(usage.code, usage.stderr).toBe(2);
      expect(usage.stderr).toMatch(/^belay: plan: its result could not be written to stdout \(ENOSPC: no space left on device, write\); it ended usage-error \(exit 2\): .*0099.*\n {2}next: \S/m);
      const help = await spawnBelay(['--help'], project.dir, ['ignore', full, 'pipe'], 'keep').run;
      expect(help.code, help.stderr).toBe(4);
      expect(help.stderr).toBe('belay: the help could not be written to stdout (ENOSPC: no space left on device, write)\n');
    } finally {
      closeSync(full);
    }
  });

  it('a changing command keeps its own exit code when its result cannot be written (`migrate up > /dev/full`)', async () => {
    const { db, project, args } = await at0002();
    const full = openSync('/dev/full', 'w');
    try {
      const result = await spawnBelay([...args, 'migrate', 'up', '--with-backup'], project.dir, ['ignore', full, 'pipe'], 'keep').run;
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    } finally {
      closeSync(full);
    }
    await expectFinished(db, project, args);
  });

  it('a run whose result cannot be written says so on stderr, how it ended and where to read it (`rollback --to 0002 --yes > /dev/full`: exit 0, rolled back)', async () => {
    const { db, project, args } = await at0002();
    expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
    const full = openSync('/dev/full', 'w');
    try {
      for (const [to, extra] of [['0004', []], ['0002', ['--json']]] as const) {
        const result = await spawnBelay([...args, ...extra, 'rollback', '--to', to, '--yes'], project.dir, ['ignore', full, 'pipe'], 'keep').run;
        expect(result.code, result.stderr).toBe(0);
        const status = jsonResult(await belay([...args, '--json', 'status'], { cwd: project.dir })) as { current: string; lastRun: { runId: string; status: string } };
        expect(status.current).toBe(to === '0004' ? '0004_c' : '0002_a');
        expect(status.lastRun.status).toBe('ok');
        expect(result.stderr).toMatch(new RegExp(`^belay: rollback: its result could not be written to stdout \\(ENOSPC: no space left on device, write\\); it ended ok \\(exit 0\\): .+\\n {2}next: \`belay history ${status.lastRun.runId}\` shows its result\\.\\ntarget belay_app@`, 'm'));
      }
    } finally {
      closeSync(full);
    }
    expect((await db.query('SELECT name FROM belay.migrations ORDER BY name')).map((r) => r.name)).toEqual(['0001_base', '0002_a']);
  });
});
