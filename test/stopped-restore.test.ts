import { spawnSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/db/ident.js';
import { belay, jsonResult, startBelay, type CliRun } from './support/cli.js';
import { freshJournal, pollUntil } from './support/kill.js';
import { adminQuery, cluster, freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

/** A table big enough for pg_restore to be caught loading it, a snapshot of it, then 1000 of its rows deleted. */
async function bigSnapshot(): Promise<{ db: TestDatabase; project: TestProject; args: string[]; id: string }> {
  const db = await freshDatabase('sr');
  await db.appQuery("CREATE TABLE big (id int PRIMARY KEY, pad text NOT NULL); INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 300000) g");
  const project = await makeProject({});
  const args = baseArgs(project, db.url);
  const taken = await belay([...args, '--json', 'backup'], { cwd: project.dir });
  expect(taken.code, taken.stderr).toBe(0);
  await db.query('DELETE FROM big WHERE id <= 1000');
  return { db, project, args, id: (jsonResult(taken) as { snapshot: { id: string } }).snapshot.id };
}

const rows = async (db: TestDatabase): Promise<number> => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM big'))[0]!.n;

/** Run `words` and SIGINT it once pg_restore loads `big` into a database whose name starts with the target's. */
async function interruptRestore(db: TestDatabase, project: TestProject, words: string[]): Promise<{ run: CliRun; journal: Array<Record<string, unknown>> }> {
  const before = new Set(await readdir(join(project.backups, 'journal')).catch(() => []));
  const running = startBelay(words, { cwd: project.dir });
  let exited = false;
  void running.done.then(() => (exited = true));
  await pollUntil(async () => {
    if (exited) throw new Error(`belay ended before pg_restore loaded the table: ${(await running.done).stderr}`);
    const copying = await adminQuery('postgres', "SELECT 1 FROM pg_stat_activity WHERE starts_with(datname, $1) AND query ~ '^COPY public\\.big .* FROM stdin'", [db.name]);
    return copying.length > 0;
  }, 'pg_restore loading big');
  running.child.kill('SIGINT');
  const run = await running.done;
  return { run, journal: await freshJournal(project.backups, before) };
}

const noteOf = (journal: Array<Record<string, unknown>>, key: string): unknown =>
  journal.map((l) => (l.detail as Record<string, unknown> | undefined)?.[key]).find((value) => value !== undefined);

const copiesOf = async (db: TestDatabase): Promise<unknown[]> => adminQuery('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${db.name}_belay_restore_`]);

describe('a signal during a restore', () => {
  it('swap: stopped before the rename, exit 4: the database not changed, restore it again', async () => {
    const { db, project, args, id } = await bigSnapshot();
    const { run, journal } = await interruptRestore(db, project, [...args, 'restore', id, '--yes']);
    expect(run.code, run.stderr).toBe(4);
    expect(run.stderr).toContain(`the restore was interrupted by a signal; ${db.name} was not changed by it`);
    expect(run.stderr).toContain(`next: restore it again when you are ready: belay restore ${id}`);
    expect(run.stderr).not.toContain('backups verify');
    expect(await rows(db)).toBe(299000);
    expect(await copiesOf(db)).toEqual([]);
    expect(journal.find((l) => l.type === 'outcome')).toMatchObject({ exitCode: 4 });
  }, 120_000);

  it('in place: its one transaction rolled back, exit 4: the database not changed, restore it again', async () => {
    const { db, project, args, id } = await bigSnapshot();
    const { run, journal } = await interruptRestore(db, project, [...args, 'restore', id, '--yes', '--strategy', 'in-place']);
    expect(run.code, run.stderr).toBe(4);
    expect(run.stderr).toContain(`the restore was interrupted by a signal; ${db.name} was not changed by it`);
    expect(run.stderr).toContain(`next: restore it again when you are ready: belay restore ${id} --strategy in-place`);
    expect(run.stderr).not.toContain('--strategy swap');
    expect(await rows(db)).toBe(299000);
    expect(journal.find((l) => l.type === 'outcome')).toMatchObject({ exitCode: 4 });
  }, 120_000);

  it('in place after the objects the snapshot lacks were dropped (committed before pg_restore): exit 12, says so and names the copy kept', async () => {
    const { db, project, args, id } = await bigSnapshot();
    await db.appQuery('CREATE TABLE newer (id int)');
    const { run, journal } = await interruptRestore(db, project, [...args, 'restore', id, '--yes', '--strategy', 'in-place']);
    expect(run.code, run.stderr).toBe(12);
    const said = `${run.stdout}\n${run.stderr}`;
    const kept = /kept in snapshot (\S+)$/m.exec(said)?.[1];
    expect(kept, said).toBeDefined();
    expect(said).toContain(
      `the restore was interrupted by a signal: nothing of ${id} was restored (pg_restore runs as one transaction), but ${db.name} was changed; 1 object(s) created after the snapshot were dropped (table public.newer), kept in snapshot ${kept}`,
    );
    expect(said).toContain(`next: to finish the restore: belay restore ${id} --strategy in-place; or to put back what ${db.name} held before it: belay restore ${kept} --strategy in-place`);
    expect(await rows(db)).toBe(299000);
    expect(await db.query("SELECT to_regclass('public.newer') AS t")).toEqual([{ t: null }]);
    expect(journal.find((l) => l.type === 'outcome')).toMatchObject({ exitCode: 12 });
  }, 120_000);

  it.each([
    ['in place', ['--strategy', 'in-place'], 'in place failed', 'nothing of it was restored (pg_restore runs as one transaction), DB is as it was before the restore; its state then is kept as snapshot', 'Fix what the message says, then restore again: belay restore ID --strategy in-place'],
    ['swap', [], 'restoring ID failed; DB was not touched', 'was not touched', 'belay backups verify ID'],
  ])('%s, its pg_restore killed (-9) before anything was changed: exit 4, nothing changed, restore it again (the swap ended 12, "may be partly restored")', async (_how, strategy, failed, said, next) => {
    const { db, project, args, id } = await bigSnapshot();
    const before = new Set(await readdir(join(project.backups, 'journal')).catch(() => []));
    const running = startBelay([...args, 'restore', id, '--yes', ...strategy], { cwd: project.dir });
    let exited = false;
    void running.done.then(() => (exited = true));
    let pid: string | undefined;
    await pollUntil(async () => {
      if (exited) throw new Error(`belay ended before pg_restore loaded the table: ${(await running.done).stderr}`);
      // in place into the database itself, for a swap into its copy
      const copying = await adminQuery('postgres', "SELECT 1 FROM pg_stat_activity WHERE starts_with(datname, $1) AND query ~ '^COPY public\\.big .* FROM stdin'", [db.name]);
      pid = spawnSync('pgrep', ['-P', String(running.child.pid), '-x', 'pg_restore'], { encoding: 'utf8' }).stdout.trim() || undefined;
      return copying.length > 0 && pid !== undefined;
    }, 'pg_restore loading big');
    process.kill(Number(pid), 'SIGKILL');
    const run = await running.done;
    const journal = await freshJournal(project.backups, before);
    const words = (text: string): string => text.replaceAll('ID', id).replaceAll('DB', db.name);
    expect(run.code, run.stderr).toBe(4);
    expect(run.stderr).toContain(words(failed));
    expect(run.stderr).toContain(words(said));
    expect(run.stderr).toContain(`next: ${words(next)}`);
    expect(run.stderr).not.toContain('partly restored');
    expect(await rows(db)).toBe(299000);
    expect(await copiesOf(db)).toEqual([]);
    expect(journal.find((l) => l.type === 'outcome')).toMatchObject({ exitCode: 4 });
  }, 120_000);
});

describe('a signal during the restore of recover', () => {
  it('settling a restore killed mid-way: stopped before its rename, exit 4, the run still to settle', async () => {
    const { db, project, args, id } = await bigSnapshot();
    const killed = startBelay([...args, 'restore', id, '--yes'], { cwd: project.dir });
    await pollUntil(async () => (await adminQuery('postgres', "SELECT 1 FROM pg_stat_activity WHERE starts_with(datname, $1) AND query ~ '^COPY public\\.big '", [db.name])).length > 0, 'pg_restore loading big');
    killed.child.kill('SIGKILL');
    await killed.done;
    // its pg_restore outlives it: the one whose COPY the signal below is sent at is recover's
    await pollUntil(async () => (await adminQuery('postgres', 'SELECT 1 FROM pg_stat_activity WHERE starts_with(datname, $1)', [`${db.name}_belay_restore_`])).length === 0, 'the killed run\'s pg_restore gone');

    const { run, journal } = await interruptRestore(db, project, [...args, 'recover']);
    expect(run.code, run.stderr).toBe(4);
    expect(run.stderr).toContain(`the restore was interrupted by a signal; ${db.name} was not changed by it`);
    expect(run.stderr).toContain('next: Run `belay recover` again when you are ready: the interrupted run is still to settle.');
    expect(await rows(db)).toBe(299000);
    expect(journal.find((l) => l.type === 'outcome')).toMatchObject({ exitCode: 4 });
    const status = await belay([...args, 'status'], { cwd: project.dir });
    expect(status.stdout).toContain('INTERRUPTED');
  }, 120_000);
});

describe('a signal during the restore of a rollback that damaged data', () => {
  it('the database stays damaged: exit 12, saying a signal stopped the restore and which snapshot to restore', async () => {
    const lossy = fileURLToPath(new URL('./fixtures/lossy', import.meta.url));
    const files: Record<string, string> = {};
    for (const name of await readdir(lossy)) files[name] = await readFile(join(lossy, name), 'utf8');
    const project = await makeProject(files);
    const db = await freshDatabase('sr');
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
    await db.appQuery("CREATE TABLE big (id int PRIMARY KEY, pad text NOT NULL); INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 300000) g");

    const { run, journal } = await interruptRestore(db, project, [...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(12);
    const envelope = JSON.parse(run.stdout) as { next: string; result: { message: string; snapshot: { id: string } } };
    const snapshot = envelope.result.snapshot.id;
    expect(envelope.result.message).toContain(`the restore was interrupted by a signal; ${db.name} was not changed by it`);
    expect(envelope.next).toContain(`belay restore ${snapshot}`);
    expect(envelope.next).not.toContain('backups verify');
    // the lossy down's damage stays: the restore that would have undone it was stopped
    expect(await db.query('SELECT count(*)::int AS n FROM fx_people')).toEqual([{ n: 5 }]);
    expect(await copiesOf(db)).toEqual([]);
    expect(journal.find((l) => l.type === 'outcome')).toMatchObject({ exitCode: 12 });
  }, 120_000);
});

/** `belay restore ID` started, once its pg_restore loads table big into the copy it makes. */
async function restoreLoadingCopy(args: string[], project: TestProject, id: string, db: TestDatabase): Promise<ReturnType<typeof startBelay>> {
  const running = startBelay([...args, '--json', 'restore', id, '--yes'], { cwd: project.dir });
  let exited = false;
  void running.done.then(() => (exited = true));
  await pollUntil(async () => {
    if (exited) throw new Error(`belay ended before pg_restore loaded the table: ${(await running.done).stderr}`);
    return (await adminQuery('postgres', "SELECT 1 FROM pg_stat_activity WHERE starts_with(datname, $1) AND query ~ '^COPY public\\.big '", [`${db.name}_belay_restore_`])).length > 0;
  }, 'pg_restore loading big into the copy');
  return running;
}

describe('a swap restore that cannot move the database aside', () => {
  it('a superuser session opened on it during the restore, which the role may not end: exit 4, the database unchanged, the copy dropped (ended 12)', async () => {
    const { db, project, args, id } = await bigSnapshot();
    const before = new Set(await readdir(join(project.backups, 'journal')).catch(() => []));
    const running = await restoreLoadingCopy(args, project, id, db);
    // after swapObstacles looked: an operator's psql, say
    const c = cluster();
    const dba = new pg.Client({ host: c.socketDir, port: c.port, user: c.superuser, database: db.name });
    await dba.connect();
    let run: CliRun;
    try {
      run = await running.done;
      expect(await dba.query('SELECT 1')).toMatchObject({ rowCount: 1 });
    } finally {
      await dba.end();
    }
    const journal = await freshJournal(project.backups, before);
    const envelope = JSON.parse(run.stdout) as { exitCode: number; outcome: string; message: string; next: string };
    const failed = `could not move ${db.name} aside (must be a superuser to terminate superuser process); it is unchanged and the restored copy was dropped`;
    const next = `fix what the message says (sessions on it this role may not end, prepared transactions: SELECT * FROM pg_prepared_xacts), then restore again: belay restore ${id}`;
    expect(run.code, run.stderr).toBe(4);
    expect(envelope).toMatchObject({ exitCode: 4, outcome: 'refused' });
    expect(envelope.message).toContain(failed);
    expect(envelope.next).toContain(next);
    expect(envelope.next).toContain(`or restore it in place: belay restore ${id} --strategy in-place`);
    expect(await rows(db)).toBe(299000);
    expect(await copiesOf(db)).toEqual([]);
    expect(await adminQuery('postgres', 'SELECT datname, datallowconn FROM pg_database WHERE starts_with(datname, $1)', [db.name])).toEqual([{ datname: db.name, datallowconn: true }]);
    expect(journal.find((l) => l.type === 'outcome')).toMatchObject({ exitCode: 4 });
    const runId = String(journal.find((l) => l.type === 'run')?.runId);
    const history = await belay([...args, 'history', runId], { cwd: project.dir });
    expect(history.code, history.stderr).toBe(0);
    expect(history.stdout).toContain(failed);
  }, 120_000);
});

describe('a swap restore whose admin session is ended', () => {
  const endAdmin = (): Promise<unknown[]> => adminQuery('postgres', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'belay restore admin%'");

  it.each([
    ['the application role', false],
    ['a superuser (restoring owners: no admin statement before the swap but those after the verify)', true],
  ])('while pg_restore loads the copy, as %s: exit 4, the database not touched, the copy dropped from a new session (the copy left; as a superuser ended 12, "may be partly restored")', async (_who, superuser) => {
    const snapshot = await bigSnapshot();
    const { db, project, id } = snapshot;
    const c = cluster();
    const args = superuser ? baseArgs(project, `postgresql://${c.superuser}@/${db.name}?host=${encodeURIComponent(c.socketDir)}&port=${c.port}`) : snapshot.args;
    const before = new Set(await readdir(join(project.backups, 'journal')).catch(() => []));
    const running = await restoreLoadingCopy(args, project, id, db);
    expect(await endAdmin()).toHaveLength(1);
    const run = await running.done;
    const journal = await freshJournal(project.backups, before);
    const envelope = JSON.parse(run.stdout) as { exitCode: number; outcome: string; message: string; next: string };
    expect(run.code, run.stderr).toBe(4);
    expect(envelope).toMatchObject({ exitCode: 4, outcome: 'refused' });
    expect(envelope.message).toContain(`restoring ${id} failed; ${db.name} was not touched: `);
    expect(envelope.message).not.toContain('partly restored');
    expect(envelope.next).toContain(`belay restore ${id}`);
    expect(await rows(db)).toBe(299000);
    expect(await copiesOf(db)).toEqual([]);
    expect(journal.find((l) => l.type === 'outcome')).toMatchObject({ exitCode: 4 });
  }, 120_000);

  /**
   * Run a swap restore of `id` and end its admin session `times` times while
   * it renames its verified copy into place, the target already renamed
   * aside: a session holds a lock on the copy (as COMMENT ON DATABASE takes
   * it) from when the copy is made, so that each rename waits. Answers the
   * run, its journal, and the copy and quarantine it journaled.
   */
  async function endAdminAtRename(project: TestProject, args: string[], db: TestDatabase, id: string, times: number): Promise<{ run: CliRun; journal: Array<Record<string, unknown>>; copy: string }> {
    const before = new Set(await readdir(join(project.backups, 'journal')).catch(() => []));
    const running = startBelay([...args, '--json', 'restore', id, '--yes'], { cwd: project.dir });
    let exited = false;
    void running.done.then(() => (exited = true));
    const c = cluster();
    const holder = new pg.Client({ host: c.socketDir, port: c.port, user: c.superuser, database: 'postgres' });
    await holder.connect();
    let copy = '';
    try {
      await pollUntil(async () => {
        if (exited) throw new Error(`belay ended before it made its copy: ${(await running.done).stderr}`);
        copy = String((await freshJournal(project.backups, before)).map((l) => (l.detail as Record<string, unknown> | undefined)?.restoreCopy).find((name) => name !== undefined) ?? '');
        return copy !== '' && (await adminQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [copy])).length > 0;
      }, 'the copy made');
      await holder.query('BEGIN');
      await holder.query(`COMMENT ON DATABASE ${quoteIdent(copy)} IS 'hold'`);
      const ended = new Set<number>();
      for (let i = 0; i < times; i++) {
        let pid: number | undefined;
        await pollUntil(async () => {
          if (exited) throw new Error(`belay ended before its rename: ${(await running.done).stderr}`);
          const waiting = await adminQuery<{ pid: number }>(
            'postgres',
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'belay restore admin%' AND wait_event_type = 'Lock' AND strpos(query, $1) > 0 AND NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = $2)",
            [`ALTER DATABASE ${quoteIdent(copy)} RENAME TO`, db.name],
          );
          pid = waiting.find((row) => !ended.has(row.pid))?.pid;
          return pid !== undefined;
        }, 'the rename into place waiting');
        ended.add(pid!);
        await adminQuery('postgres', 'SELECT pg_terminate_backend($1)', [pid]);
      }
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
    }
    const run = await running.done;
    return { run, journal: await freshJournal(project.backups, before), copy };
  }

  const databasesOf = async (db: TestDatabase): Promise<Array<{ datname: string; datallowconn: boolean }>> =>
    adminQuery('postgres', 'SELECT datname, datallowconn FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname', [db.name]);

  it('at the rename into place, the target renamed aside: it renames the copy in from a new session, exit 0, the quarantine open (ended 12, "the database stopped answering")', async () => {
    const { db, project, args, id } = await bigSnapshot();
    const { run, journal } = await endAdminAtRename(project, args, db, id, 1);
    expect(run.code, run.stderr).toBe(0);
    const quarantine = String((noteOf(journal, 'connectionsOff') as string[])[1]);
    expect(JSON.parse(run.stdout)).toMatchObject({ exitCode: 0, outcome: 'ok' });
    expect(await rows(db)).toBe(300000);
    expect(await databasesOf(db)).toEqual([
      { datname: db.name, datallowconn: true },
      { datname: quarantine, datallowconn: true },
    ]);
    expect(journal.find((l) => l.type === 'outcome')).toMatchObject({ exitCode: 0 });
  }, 120_000);

  it('at the rename into place, ended on the new session too: exit 12 naming the renames; recover renames the verified copy in, turns the quarantine back on and records the run (exit 2 "does not exist", then naming an older run\'s databases)', async () => {
    const { db, project, args, id } = await bigSnapshot();
    // an older swap killed during its pg_restore and settled by recover, its journal file without an outcome
    const killed = startBelay([...args, 'restore', id, '--yes'], { cwd: project.dir });
    await pollUntil(async () => (await adminQuery('postgres', "SELECT 1 FROM pg_stat_activity WHERE starts_with(datname, $1) AND query ~ '^COPY public\\.big '", [`${db.name}_belay_restore_`])).length > 0, 'pg_restore loading big');
    killed.child.kill('SIGKILL');
    await killed.done;
    await pollUntil(async () => (await adminQuery('postgres', 'SELECT 1 FROM pg_stat_activity WHERE starts_with(datname, $1)', [`${db.name}_belay_restore_`])).length === 0, "the killed run's pg_restore gone");
    const settled = await belay([...args, 'recover'], { cwd: project.dir });
    expect(settled.code, settled.stderr).toBe(11);
    await db.query('DELETE FROM big WHERE id <= 1000');
    // the quarantine that recover's own swap left
    const older = new Set((await databasesOf(db)).map((d) => d.datname).filter((name) => name !== db.name));
    const left = async (): Promise<Array<{ datname: string; datallowconn: boolean }>> => (await databasesOf(db)).filter((d) => !older.has(d.datname));

    const { run, journal, copy } = await endAdminAtRename(project, args, db, id, 2);
    const quarantine = String((noteOf(journal, 'connectionsOff') as string[])[1]);
    expect(run.code, run.stderr).toBe(12);
    expect(JSON.parse(run.stdout).message).toContain(`${db.name} was moved aside to ${quarantine}, but the restored copy ${copy} could not take its name`);
    expect(await left()).toEqual([
      { datname: copy, datallowconn: true },
      { datname: quarantine, datallowconn: false },
    ]);
    const runId = String(journal.find((l) => l.type === 'run')?.runId);

    const recover = await belay([...args, 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stderr).toBe(0);
    expect(recover.stdout).toContain(`renamed ${copy} to ${db.name}: run ${runId} ended 12 between the renames of its swap restore, after verifying that copy and renaming the damaged database ${quarantine}`);
    expect(recover.stdout).toContain(`turned connections to ${quarantine} back on`);
    expect(await rows(db)).toBe(300000);
    expect(await left()).toEqual([
      { datname: db.name, datallowconn: true },
      { datname: quarantine, datallowconn: true },
    ]);
    expect(await db.query('SELECT status, exit_code FROM belay.runs WHERE id = $1', [runId])).toEqual([{ status: 'manual-action-needed', exit_code: 12 }]);
    const status = await belay([...args, 'status'], { cwd: project.dir });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).not.toContain('INTERRUPTED');
    const again = await belay([...args, 'recover'], { cwd: project.dir });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('no interrupted run: nothing to recover');
  }, 180_000);
});
