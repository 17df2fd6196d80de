import { spawn } from 'node:child_process';
import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, belay, cleanEnv, jsonResult } from './support/cli.js';
import { freshJournal, pollUntil } from './support/kill.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { GOOD_REVISIONS, baseArgs, makeProject, type TestProject } from './support/project.js';

// The terminal closing (an SSH session dropped during a deploy) sends SIGHUP: belay takes it as it takes a first
// SIGTERM, and writes its result where stdout goes even though its terminal (stderr) can no longer be written.

const REVISIONS: Record<string, string> = {
  '0001_base.up.sql': 'CREATE TABLE base (id int PRIMARY KEY);',
  '0001_base.down.sql': 'DROP TABLE base;',
  '0002_slow.up.sql': "SELECT pg_sleep(30), 'belay-test slow up';\nCREATE TABLE slow (id int);",
  '0002_slow.down.sql': 'DROP TABLE slow;',
};

async function running(db: TestDatabase, marker: string): Promise<void> {
  await pollUntil(async () => {
    const rows = await db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()", [marker]);
    return rows.length > 0;
  }, `a statement with ${marker}`);
}

const applied = async (db: TestDatabase): Promise<string[]> => (await db.query('SELECT name FROM belay.migrations ORDER BY name')).map((r) => String(r.name));

/** `migrate up --with-backup --json > file`, sent `signal` while 0002 sleeps; with SIGHUP its stderr is closed first, as a hung-up terminal is. */
async function signalledMidRun(signal: 'SIGTERM' | 'SIGHUP'): Promise<{ code: number | null; document: Record<string, unknown>; journal: Array<Record<string, unknown>>; status: Record<string, unknown>; applied: string[]; db: TestDatabase; project: TestProject }> {
  const db = await freshDatabase();
  const project = await makeProject(REVISIONS);
  const args = baseArgs(project, db.url);
  expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
  const earlier = new Set(await readdir(join(project.backups, 'journal')));
  const resultFile = join(project.dir, 'result.json');
  const out = await open(resultFile, 'w');
  const child = spawn(process.execPath, [CLI, ...args, '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full'], { cwd: project.dir, env: cleanEnv(), stdio: ['ignore', out.fd, 'pipe'] });
  await out.close();
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  child.stderr!.resume();
  await running(db, 'belay-test slow up');
  if (signal === 'SIGHUP') child.stderr!.destroy();
  child.kill(signal);
  const code = await done;
  const document = JSON.parse(await readFile(resultFile, 'utf8')) as Record<string, unknown>;
  const journal = await freshJournal(project.backups, earlier);
  const status = jsonResult(await belay([...args, '--json', 'status'], { cwd: project.dir })) as Record<string, unknown>;
  return { code, document, journal, status, applied: await applied(db), db, project };
}

describe('SIGHUP', () => {
  it('mid-run (`migrate up --with-backup --json > file`, its terminal gone): settled as SIGTERM settles it, the one JSON document in the file', async () => {
    const term = await signalledMidRun('SIGTERM');
    const hup = await signalledMidRun('SIGHUP');
    expect(term.code).toBe(10);
    expect(hup.code).toBe(term.code);
    for (const { document, journal, status, applied } of [term, hup]) {
      expect(document).toMatchObject({ command: 'migrate up', exitCode: 10, outcome: 'rolled-back' });
      expect(document.next).toEqual(expect.any(String));
      expect(journal.filter((l) => l.type === 'outcome')).toMatchObject([{ status: 'rolled-back', exitCode: 10 }]);
      expect(status).toMatchObject({ interrupted: null, lock: null, lastRun: { status: 'rolled-back', exitCode: 10 } });
      expect(applied).toEqual(['0001_base']);
    }
    expect(String(hup.document.message)).toBe(String(term.document.message).replaceAll('SIGTERM', 'SIGHUP'));
  }, 120_000);

  it('at the rollback question, its terminal hung up: taken as no, exit 4 as for SIGTERM, the run journaled as refused, nothing reverted', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
    const resultFile = join(project.dir, 'result.json');
    // belay on a pseudo-terminal (stdin, stderr: so it asks), stdout to a file; the terminal's master is then closed
    // (the kernel sends the session SIGHUP, and the terminal answers EIO), and belay's exit status is printed
    const script = [
      'import os, sys',
      'pid, fd = os.forkpty()',
      'if pid == 0:',
      '    out = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)',
      '    os.dup2(out, 1)',
      '    os.execv(sys.argv[2], sys.argv[2:])',
      'seen = b""',
      'while b"Proceed? [y/N]" not in seen:',
      '    seen += os.read(fd, 1024)',
      'os.close(fd)',
      'print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))',
    ].join('\n');
    const python = spawn('python3', ['-c', script, resultFile, process.execPath, CLI, ...args, '--json', 'rollback', '--to', '0001'], { cwd: project.dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
    let said = '';
    python.stdout.on('data', (chunk: Buffer) => (said += chunk.toString()));
    const timer = setTimeout(() => python.kill('SIGKILL'), 60_000);
    await new Promise((resolve) => python.on('close', resolve));
    clearTimeout(timer);
    expect(said.trim()).toBe('4');
    const document = JSON.parse(await readFile(resultFile, 'utf8')) as Record<string, unknown>;
    expect(document).toMatchObject({ command: 'rollback', exitCode: 4, outcome: 'refused', message: 'rollback not confirmed; nothing was changed', next: 'Run it again when you are ready.' });
    const status = jsonResult(await belay([...args, '--json', 'status'], { cwd: project.dir })) as Record<string, unknown>;
    expect(status).toMatchObject({ interrupted: null, lock: null, lastRun: { status: 'refused', exitCode: 4 } });
    expect(await applied(db)).toEqual(['0001_accounts', '0002_profiles', '0003_accounts_name']);
  }, 120_000);
});
