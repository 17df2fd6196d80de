import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/db/ident.js';
import { belay, jsonResult, startBelay } from './support/cli.js';
import { freshJournal, pollUntil } from './support/kill.js';
import { adminQuery, cluster, freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

const LOSSY = fileURLToPath(new URL('./fixtures/lossy', import.meta.url));

/** The lossy set applied: its rollback to 0001 deletes rows, so integrity fails and belay swap-restores the snapshot. */
async function lossyAt0003(): Promise<{ db: TestDatabase; project: TestProject; args: string[] }> {
  const files: Record<string, string> = {};
  for (const name of await readdir(LOSSY)) files[name] = await readFile(join(LOSSY, name), 'utf8');
  const project = await makeProject(files);
  const db = await freshDatabase('p');
  const args = baseArgs(project, db.url);
  const up = await belay([...args, 'migrate', 'up'], { cwd: project.dir });
  expect(up.code, up.stderr).toBe(0);
  return { db, project, args };
}

const allowsConnections = async (name: string): Promise<boolean | undefined> =>
  (await adminQuery<{ datallowconn: boolean }>('postgres', 'SELECT datallowconn FROM pg_database WHERE datname = $1', [name]))[0]?.datallowconn;

/**
 * Run the rollback and SIGKILL it while the swap's rename of `held` waits:
 * a session on `postgres` holds a lock on that database (as COMMENT ON
 * DATABASE takes it) once `held` names one. Its session is gone before the
 * lock is let go, so the rename never happens. Answers the run's journal.
 */
async function killAtRename(
  project: TestProject,
  args: string[],
  held: (journal: Array<Record<string, unknown>>) => string | undefined,
  command = ['rollback', '--to', '0001'],
): Promise<Array<Record<string, unknown>>> {
  const before = new Set(await readdir(join(project.backups, 'journal')).catch(() => []));
  const run = startBelay([...args, '--json', '--yes', ...command], { cwd: project.dir });
  let exited = false;
  void run.done.then(() => (exited = true));
  const c = cluster();
  const holder = new pg.Client({ host: c.socketDir, port: c.port, user: c.superuser, database: 'postgres' });
  await holder.connect();
  try {
    let name: string | undefined;
    await pollUntil(async () => {
      if (exited) throw new Error(`belay ended before the rename: ${(await run.done).stderr}`);
      name = held(await freshJournal(project.backups, before));
      return name !== undefined && (await allowsConnections(name)) !== undefined;
    }, 'the database to hold');
    await holder.query('BEGIN');
    await holder.query(`COMMENT ON DATABASE ${quoteIdent(name!)} IS 'hold'`);
    const rename = `ALTER DATABASE ${quoteIdent(name!)} RENAME TO`;
    const renaming = async (): Promise<boolean> =>
      (await adminQuery('postgres', "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND strpos(query, $1) > 0", [rename])).length > 0;
    await pollUntil(async () => {
      if (exited) throw new Error(`belay ended before the rename: ${(await run.done).stderr}`);
      return await renaming();
    }, `${rename} waiting`);
    run.child.kill('SIGKILL');
    await run.done;
    // the killed runner's session notices its closed socket (client_connection_check_interval) and ends without renaming
    await pollUntil(async () => (await adminQuery('postgres', 'SELECT 1 FROM pg_stat_activity WHERE strpos(query, $1) > 0', [rename])).length === 0, 'the rename session gone');
  } finally {
    await holder.query('ROLLBACK').catch(() => {});
    await holder.end();
  }
  return await freshJournal(project.backups, before);
}

const targetOf = (db: TestDatabase) => (journal: Array<Record<string, unknown>>): string | undefined =>
  journal.some((l) => l.step === 'restore' && l.event === 'start') ? db.name : undefined;

const noteDetail = (journal: Array<Record<string, unknown>>, key: string): unknown =>
  journal.map((l) => (l.detail as Record<string, unknown> | undefined)?.[key]).find((value) => value !== undefined);

describe('a swap restore killed between its steps', () => {
  it('killed before the first rename: the target refuses connections; status says how to turn them on, recover does it and settles the run', async () => {
    const { db, project, args } = await lossyAt0003();
    const journal = await killAtRename(project, args, targetOf(db));
    expect(await allowsConnections(db.name)).toBe(false);

    for (const command of ['status', 'history']) {
      const refused = await belay([...args, command], { cwd: project.dir });
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toContain('is not currently accepting connections');
      expect(refused.stderr).toContain(`belay may have turned connections off during a swap restore that did not finish: \`belay recover\``);
      expect(refused.stderr).toContain(`ALTER DATABASE ${quoteIdent(db.name)} WITH ALLOW_CONNECTIONS true; then \`belay recover\``);
      expect(refused.stderr).not.toContain('Check that the server is running');
    }
    // journaled before connections were turned off: the name of the target, and the one it was to take
    expect(noteDetail(journal, 'connectionsOff')).toEqual([db.name, expect.stringMatching(new RegExp(`^${db.name}_quarantine_`))]);

    // while a session of that run is still there (a swap going on, or its rename still waiting), recover leaves it alone
    const runId = String(journal.find((l) => l.type === 'run')?.runId);
    const c = cluster();
    const live = new pg.Client({ host: c.socketDir, port: c.port, user: c.superuser, database: 'postgres', application_name: `belay restore admin ${runId.slice(-12)}` });
    await live.connect();
    try {
      const early = await belay([...args, 'recover'], { cwd: project.dir });
      expect(early.code, early.stderr).toBe(3);
      expect(early.stderr).toContain(`run ${runId} is swapping a restored copy into ${db.name}, which refuses connections meanwhile`);
      expect(await allowsConnections(db.name)).toBe(false);
    } finally {
      await live.end();
    }

    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stderr).toBe(11);
    expect(await allowsConnections(db.name)).toBe(true);
    expect(await db.query('SELECT count(*)::int AS n FROM fx_people')).toEqual([{ n: 10 }]);
    const copies = await adminQuery('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${db.name}_belay_restore_`]);
    expect(copies).toEqual([]);
    const recoverJournal = await readFile(String(jsonResult(recover).journalFile), 'utf8');
    expect(recoverJournal).toContain(`turned connections to ${db.name} back on: a swap restore that did not finish had turned them off`);
    const status = await belay([...args, 'status'], { cwd: project.dir });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).not.toContain('INTERRUPTED');
  });

  it('connections turned on by hand, as the hint says: status names the restored copy without calling it half-made', async () => {
    const { db, project, args } = await lossyAt0003();
    const journal = await killAtRename(project, args, targetOf(db));
    const copy = String(noteDetail(journal, 'restoreCopy'));
    await adminQuery('postgres', `ALTER DATABASE ${quoteIdent(db.name)} WITH ALLOW_CONNECTIONS true`);
    const status = await belay([...args, 'status'], { cwd: project.dir });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`LEFT      ${copy}: a copy a stopped restore left (complete or not); once you have checked it: DROP DATABASE ${quoteIdent(copy)};`);
    expect(status.stdout).not.toContain('half-made');
    const recover = await belay([...args, 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stderr).toBe(11);
    expect(await db.query('SELECT count(*)::int AS n FROM fx_people')).toEqual([{ n: 10 }]);
  });

  it('killed between the two renames: status tells the rename recover will do; recover renames the verified copy into place, verifies it and names the damaged one', async () => {
    const { db, project, args } = await lossyAt0003();
    const journal = await killAtRename(project, args, (lines) => noteDetail(lines, 'restoreCopy') as string | undefined);
    const runId = String(journal.find((l) => l.type === 'run')?.runId);
    const copy = String(noteDetail(journal, 'restoreCopy'));
    const quarantine = (noteDetail(journal, 'connectionsOff') as string[])[1]!;
    expect(await allowsConnections(db.name)).toBeUndefined();
    expect(await allowsConnections(quarantine)).toBe(false);
    expect(await allowsConnections(copy)).toBe(true);

    const status = await belay([...args, '--json', 'status'], { cwd: project.dir });
    expect(status.code, status.stderr).toBe(0);
    const interrupted = jsonResult<{ interrupted: { run: { runId: string }; action: string; why: string } }>(status).interrupted;
    expect(interrupted).toMatchObject({ run: { runId }, action: 'verify-restore' });
    expect(interrupted.why).toContain(`recover renames ${copy} to ${db.name} first`);
    // status only reads: nothing renamed
    expect(await allowsConnections(db.name)).toBeUndefined();
    // history reads the run from its journal file, as status does, and says what recover will do (it ended 2: cannot connect)
    const swapped = `${db.name} does not exist: run ${runId} was killed between the renames of its swap restore (${db.name} to ${quarantine}, its verified copy ${copy} to ${db.name}); \`belay recover\` renames ${copy} to ${db.name} and settles the run`;
    const shown = await belay([...args, 'history', runId], { cwd: project.dir });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`run ${runId}: rollback of ${db.name}`);
    expect(shown.stdout).toContain(`turning connections to ${db.name} off to rename it ${quarantine} and ${copy} into its place`);
    expect(shown.stdout).toContain(`next: ${swapped}`);
    const shownJson = JSON.parse((await belay([...args, '--json', 'history', runId], { cwd: project.dir })).stdout) as { exitCode: number; next: string; result: { run: { runId: string; status: string } } };
    expect(shownJson).toMatchObject({ exitCode: 0, result: { run: { runId, status: 'interrupted' } } });
    expect(shownJson.next).toContain(swapped);
    const listed = await belay([...args, 'history'], { cwd: project.dir });
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(runId);
    expect(await allowsConnections(db.name)).toBeUndefined();

    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stdout + recover.stderr).toBe(0);
    const said = jsonResult(recover);
    expect(recover.stdout).toContain(`settling run ${runId}: it stopped while restoring snapshot`);
    expect(recover.stdout).toContain(`the damaged database is kept as ${quarantine}`);
    expect(recover.stdout).toContain('the restored data verified intact');
    expect(said.restore).toBeUndefined();
    expect(await db.query('SELECT count(*)::int AS n FROM fx_people')).toEqual([{ n: 10 }]);
    expect(await allowsConnections(copy)).toBeUndefined();
    expect(await allowsConnections(quarantine)).toBe(true);
    expect(await adminQuery(quarantine, 'SELECT count(*)::int AS n FROM fx_people')).toEqual([{ n: 5 }]);
    const recoverJournal = await readFile(String(said.journalFile), 'utf8');
    expect(recoverJournal).toContain(`renamed ${copy} to ${db.name}: run ${runId} was killed between the renames of its swap restore`);
    const runJournal = await readFile(join(project.backups, 'journal', `${runId}.jsonl`), 'utf8');
    expect(runJournal).toContain(`belay recover renamed ${copy}`);

    const history = await belay([...args, '--json', 'history', runId], { cwd: project.dir });
    expect(history.code, history.stderr).toBe(0);
    expect(history.stdout).toContain(quarantine);
    const after = await belay([...args, 'status'], { cwd: project.dir });
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).not.toContain('INTERRUPTED');
    expect(after.stdout).toContain(`LEFT      ${quarantine}: the damaged database a restore set aside`);
  });

  it('killed between the two renames: once the copy is renamed into place by hand, recover turns connections on in the quarantine', async () => {
    const { db, project, args } = await lossyAt0003();
    const journal = await killAtRename(project, args, (lines) => noteDetail(lines, 'restoreCopy') as string | undefined);
    const copy = String(noteDetail(journal, 'restoreCopy'));
    const quarantines = await adminQuery<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${db.name}_quarantine_`]);
    expect(quarantines).toHaveLength(1);
    const quarantine = quarantines[0]!.datname;
    expect(await allowsConnections(db.name)).toBeUndefined();
    expect(await allowsConnections(quarantine)).toBe(false);

    await adminQuery('postgres', `ALTER DATABASE ${quoteIdent(copy)} RENAME TO ${quoteIdent(db.name)}`);

    // the copy in place is the snapshot, verified before the swap: recover verifies it again, never restores over it
    const recover = await belay([...args, 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stderr).toBe(0);
    expect(recover.stdout + recover.stderr).toContain('after the snapshot had replaced the database');
    expect(recover.stdout + recover.stderr).toContain('the restored data verified intact');
    expect(await db.query('SELECT count(*)::int AS n FROM fx_people')).toEqual([{ n: 10 }]);
    expect(await adminQuery('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${db.name}_quarantine_`])).toEqual([{ datname: quarantine }]);
    expect(await allowsConnections(quarantine)).toBe(true);
    const status = await belay([...args, 'status'], { cwd: project.dir });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`LEFT      ${quarantine}: the damaged database a restore set aside; once you have checked it: DROP DATABASE ${quoteIdent(quarantine)};`);
    // it can be checked: its rows are the damaged ones (half of them deleted by the lossy down)
    expect(await adminQuery(quarantine, 'SELECT count(*)::int AS n FROM fx_people')).toEqual([{ n: 5 }]);
  });

  it('a recover killed between the two renames of its own restore: the next recover renames the copy in, verifies it and settles the run the first was settling', async () => {
    const project = await makeProject({
      '0001_t.up.sql': 'CREATE TABLE t (id int);\nINSERT INTO t SELECT generate_series(1, 100);',
      '0001_t.down.sql': 'DROP TABLE t;',
      '0002_nt.up.sql': '-- belay:no-transaction\nCREATE TABLE nt (id int);\nSELECT pg_sleep(2);',
      '0002_nt.down.sql': 'DROP TABLE nt;',
    });
    const db = await freshDatabase('p');
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    // killed inside a revision outside a transaction: recover restores the snapshot
    const before = new Set(await readdir(join(project.backups, 'journal')));
    const run = startBelay([...args, 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    await pollUntil(async () => (await freshJournal(project.backups, before)).some((l) => l.step === 'apply' && l.event === 'start'), 'the apply of 0002_nt');
    run.child.kill('SIGKILL');
    await run.done;
    const runId = String((await freshJournal(project.backups, before)).find((l) => l.type === 'run')?.runId);
    await killAtRename(project, args, (lines) => noteDetail(lines, 'restoreCopy') as string | undefined, ['recover']);
    expect(await allowsConnections(db.name)).toBeUndefined();

    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stdout + recover.stderr).toBe(0);
    expect(jsonResult<{ message: string }>(recover).message).toContain('the restored data verified intact');
    expect(await db.query("SELECT count(*)::int AS n, to_regclass('nt') AS nt FROM t")).toEqual([{ n: 100, nt: null }]);
    const history = jsonResult<Array<{ runId: string; status: string }>>(await belay([...args, '--json', 'history'], { cwd: project.dir }));
    expect(history.find((r) => r.runId === runId)).toMatchObject({ status: 'interrupted' });
  });
});
