import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { jsonResult, startBelay, belay } from './support/cli.js';
import { pollUntil, freshJournal } from './support/kill.js';
import { freshDatabase } from './support/pg.js';
import { makeProject } from './support/project.js';

/**
 * A real full disk: the backups folder on a small tmpfs, filled by a writer
 * of the test's once the run is past its snapshot. Mounting needs root (CI
 * runs as root); a root that may not mount fails here rather than skip.
 */
const root = process.getuid?.() === 0;

const mounts: string[] = [];

afterEach(async () => {
  for (const dir of mounts.splice(0)) {
    execFileSync('mount', ['-o', 'remount,rw', dir]);
    execFileSync('umount', [dir]);
    await rm(dir, { recursive: true, force: true });
  }
});

async function smallDisk(megabytes: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'belay-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m,mode=0755`, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

/** Write zeros until the disk says it is full. */
async function fillUp(dir: string): Promise<void> {
  const file = await open(join(dir, 'filler'), 'w');
  const block = Buffer.alloc(64 * 1024);
  try {
    for (;;) await file.write(block);
  } catch (error) {
    expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC');
  } finally {
    await file.close();
  }
}

/** 0001 with data, then 40 revisions that each take a moment: the disk fills while they run. */
function revisions(): Record<string, string> {
  const files: Record<string, string> = {
    '0001_base.up.sql': "CREATE TABLE base (id int PRIMARY KEY, v text);\nINSERT INTO base SELECT g, md5(g::text) FROM generate_series(1, 2000) g;",
    '0001_base.down.sql': 'DROP TABLE base;',
  };
  for (let i = 2; i <= 41; i++) {
    const name = String(i).padStart(4, '0');
    files[`${name}_t${i}.up.sql`] = `SELECT pg_sleep(0.02);\nCREATE TABLE t${i} (id int);`;
    files[`${name}_t${i}.down.sql`] = `DROP TABLE t${i};`;
  }
  return files;
}

describe.runIf(root)('a full disk under the backups folder', () => {
  it('the journal file cannot be written mid-run: the run stops at the next revision and rolls back (exit 10, next: free space), the database keeps every step', async () => {
    const db = await freshDatabase();
    const project = await makeProject(revisions());
    const backups = join(await smallDisk(32), 'b');
    const args = ['--database-url', db.url, '--migrations', project.migrations, '--backups', backups];
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const before = new Set(await readdir(join(backups, 'journal')));
    const run = startBelay([...args, '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    // past the snapshot, a few revisions in: then the disk is full
    await pollUntil(async () => (await freshJournal(backups, before)).some((l) => l.step === 'apply' && l.revision === '0004_t4' && l.event === 'end'), 'the apply of 0004');
    await fillUp(join(backups, '..'));
    const done = await run.done;
    expect(done.code, done.stdout + done.stderr).toBe(10);
    const envelope = JSON.parse(done.stdout) as { message: string; next: string; result: { runId: string; toRevision: string } };
    expect(envelope.message).toMatch(/journal file .* could not be written \(ENOSPC: the disk is full\)/);
    expect(envelope.next).toMatch(/^Free space on the disk that holds /);
    expect(envelope.result.toRevision).toBe('0001_base');
    expect(done.stderr).not.toMatch(/this is a bug/);
    // the database is back at 0001, its rows intact
    expect(await db.query("SELECT count(*)::int AS n, (SELECT count(*)::int FROM pg_tables WHERE tablename ~ '^t[0-9]+$') AS later FROM base")).toEqual([{ n: 2000, later: 0 }]);
    expect(await db.query('SELECT max(name) AS at FROM belay.migrations')).toEqual([{ at: '0001_base' }]);
    // the file stops where the disk filled; the database's copy has the downs and the outcome
    const file = await freshJournal(backups, before);
    expect(file.some((l) => l.type === 'outcome')).toBe(false);
    await rm(join(backups, '..', 'filler'));
    const history = await belay([...args, '--json', 'history', envelope.result.runId], { cwd: project.dir });
    expect(history.code, history.stderr).toBe(0);
    const steps = jsonResult<{ run: { status: string; exitCode: number }; steps: Array<{ step: string; event: string; revision?: string }> }>(history);
    expect(steps.run).toMatchObject({ status: 'rolled-back', exitCode: 10 });
    expect(steps.steps.some((s) => s.step === 'down' && s.revision === '0004_t4' && s.event === 'end')).toBe(true);
    const status = jsonResult<{ current: string; interrupted: unknown }>(await belay([...args, '--json', 'status'], { cwd: project.dir }));
    expect(status).toMatchObject({ current: '0001_base', interrupted: null });
  });

  it('the disk is full before the run: its journal file cannot take its first line, the run is refused (exit 4) and leaves no file', async () => {
    const db = await freshDatabase();
    const project = await makeProject(revisions());
    const disk = await smallDisk(1);
    const backups = join(disk, 'b');
    await mkdir(join(backups, 'journal'), { recursive: true });
    await fillUp(disk);
    const run = await belay(['--database-url', db.url, '--migrations', project.migrations, '--backups', backups, 'migrate', 'up'], { cwd: project.dir });
    expect(run.code, run.stderr).toBe(4);
    expect(run.stderr).toMatch(/journal file .* could not be written \(ENOSPC: the disk is full\)/);
    expect(run.stderr).toMatch(/next: Free space on the disk that holds /);
    // no journal named: there is none
    expect(run.stderr).not.toMatch(/^ {2}journal /m);
    expect(await readdir(join(backups, 'journal'))).toEqual([]);
    expect(await db.query("SELECT to_regclass('belay.runs') AS runs")).toEqual([{ runs: null }]);
  });

  it('the disk fills during the snapshot: pg_dump fails, the run is refused (exit 4) before it changes anything', async () => {
    const db = await freshDatabase();
    // large enough that pg_dump is still writing when the disk fills, however loaded the machine
    await db.appQuery("CREATE TABLE filler AS SELECT g, md5(g::text) || md5((g + 1)::text) AS v FROM generate_series(1, 400000) g");
    const project = await makeProject(revisions());
    const backups = join(await smallDisk(96), 'b');
    const args = ['--database-url', db.url, '--migrations', project.migrations, '--backups', backups];
    const first = await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir });
    expect(first.code, first.stderr).toBe(0);
    const before = new Set(await readdir(join(backups, 'journal')));
    // a full snapshot: pg_dump of every row (the touched one of this revision set holds the schema only)
    const run = startBelay([...args, 'migrate', 'up', '--with-backup', '--backup-scope', 'full'], { cwd: project.dir });
    await pollUntil(async () => (await freshJournal(backups, before)).some((l) => l.step === 'backup' && l.event === 'start'), 'the backup step');
    await fillUp(join(backups, '..'));
    const done = await run.done;
    expect(done.code, done.stderr).toBe(4);
    expect(done.stderr).toMatch(/no space left on device|could not be written \(ENOSPC/i);
    expect(done.stderr).not.toMatch(/this is a bug/);
    expect(await db.query("SELECT max(name) AS at, (SELECT count(*)::int FROM pg_tables WHERE tablename ~ '^t[0-9]+$') AS later FROM belay.migrations")).toEqual([{ at: '0001_base', later: 0 }]);
    await rm(join(backups, '..', 'filler'));
    const status = jsonResult<{ current: string; interrupted: unknown }>(await belay([...args, '--json', 'status'], { cwd: project.dir }));
    expect(status).toMatchObject({ current: '0001_base', interrupted: null });
  });
});

describe.runIf(root)('a file system remounted read-only', () => {
  it('backups prune refuses before deleting anything (exit 4, next: make it writable); it was exit 1 with a stack trace', async () => {
    const db = await freshDatabase();
    const project = await makeProject(revisions());
    const disk = await smallDisk(32);
    const backups = join(disk, 'b');
    const args = ['--database-url', db.url, '--migrations', project.migrations, '--backups', backups];
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    for (let i = 0; i < 3; i++) expect((await belay([...args, 'backup'], { cwd: project.dir })).code).toBe(0);
    const before = (await readdir(backups)).sort();
    execFileSync('mount', ['-o', 'remount,ro', disk]);
    const run = await belay([...args, '--json', 'backups', 'prune', '--keep', '1', '--yes'], { cwd: project.dir });
    expect(run.code, run.stderr).toBe(4);
    const envelope = JSON.parse(run.stdout) as { message: string; next: string };
    expect(envelope.message).toBe(`cannot delete in ${backups}: EROFS: the file system is read-only; nothing was deleted`);
    expect(envelope.next).toMatch(/^Make .* writable by the user running belay/);
    expect((await readdir(backups)).sort()).toEqual(before);
    execFileSync('mount', ['-o', 'remount,rw', disk]);
    const pruned = await belay([...args, '--json', 'backups', 'prune', '--keep', '1', '--yes'], { cwd: project.dir });
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(jsonResult<{ removed: string[] }>(pruned).removed).toHaveLength(2);
  });

  it('belay new in a migrations folder on it: exit 2 with the cause and next, and no half revision (it was exit 1)', async () => {
    const disk = await smallDisk(1);
    const migrations = join(disk, 'migrations');
    await mkdir(migrations);
    await writeFile(join(migrations, '0001_a.up.sql'), 'CREATE TABLE a (id int);');
    await writeFile(join(migrations, '0001_a.down.sql'), 'DROP TABLE a;');
    execFileSync('mount', ['-o', 'remount,ro', disk]);
    const run = await belay(['--migrations', migrations, 'new', 'add_thing']);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(`cannot create the revision in ${migrations}: EROFS: the file system is read-only; nothing was created`);
    expect(run.stderr).toMatch(/next: Make .* a folder the user running belay can write/);
    expect(run.stderr).not.toMatch(/this is a bug/);
    expect((await readdir(migrations)).sort()).toEqual(['0001_a.down.sql', '0001_a.up.sql']);
  });
});
