import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/db/ident.js';
import { belay, jsonResult, startBelay } from './support/cli.js';
import { freshJournal, pollUntil } from './support/kill.js';
import { adminQuery, cluster, freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

const ROWS = 20000;

/**
 * A database at 0001 with a snapshot of it, taken by `belay backup` (so the
 * snapshot holds that backup run as running), and rows written after it:
 * only the copy an in-place restore keeps first holds those.
 */
async function snapshotThenLaterRows(): Promise<{ db: TestDatabase; project: TestProject; args: string[]; snapshot: string }> {
  const project = await makeProject({
    '0001_t.up.sql': `CREATE TABLE t (id int PRIMARY KEY, v text);\nINSERT INTO t SELECT g, 'v' || g FROM generate_series(1, ${ROWS}) g;`,
    '0001_t.down.sql': 'DROP TABLE t;',
  });
  const db = await freshDatabase('rk');
  const args = baseArgs(project, db.url);
  expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
  const backup = await belay([...args, '--json', 'backup'], { cwd: project.dir });
  expect(backup.code, backup.stderr).toBe(0);
  const snapshot = String(jsonResult<{ snapshot: { id: string } }>(backup).snapshot.id);
  await db.query(`INSERT INTO t SELECT g, 'later' FROM generate_series(${ROWS + 1}, ${ROWS + 5}) g`);
  return { db, project, args, snapshot };
}

const journalNames = async (project: TestProject): Promise<Set<string>> => new Set(await readdir(join(project.backups, 'journal')).catch(() => []));

const runIdOf = (journal: Array<Record<string, unknown>>): string | undefined => journal.find((l) => l.type === 'run')?.runId as string | undefined;

/** The snapshots an in-place restore kept of what it replaced (their manifests say quarantine). */
async function quarantineSnapshots(project: TestProject): Promise<string[]> {
  const found: string[] = [];
  for (const name of await readdir(project.backups)) {
    if (!name.endsWith('.manifest.json')) continue;
    const manifest = JSON.parse(await readFile(join(project.backups, name), 'utf8')) as { id: string; quarantine?: boolean };
    if (manifest.quarantine) found.push(manifest.id);
  }
  return found;
}

const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

/** After the restore run was killed, recover settles it: the second recover finds nothing, status nothing interrupted. */
async function settledOnce(args: string[], project: TestProject, runId: string): Promise<void> {
  const again = await belay([...args, 'recover'], { cwd: project.dir });
  expect(again.code, again.stderr).toBe(0);
  expect(again.stderr + again.stdout).toContain('nothing to recover');
  const status = await belay([...args, '--json', 'status'], { cwd: project.dir });
  expect(status.code, status.stderr).toBe(0);
  expect(jsonResult<{ interrupted: unknown }>(status).interrupted).toBeNull();
  const history = await belay([...args, '--json', 'history'], { cwd: project.dir });
  const run = jsonResult<Array<{ runId: string; command: string; status: string }>>(history).find((r) => r.runId === runId);
  expect(run).toMatchObject({ command: 'restore', status: 'interrupted' });
}

/** `belay restore --strategy in-place` killed with -9 once pg_restore committed: the run's row gone with the database it replaced. */
async function killedInPlaceAfterCommit(
  command = (snapshot: string): string[] => ['restore', snapshot, '--strategy', 'in-place'],
  prepare: (args: string[], project: TestProject) => Promise<void> = async () => {},
): Promise<{ db: TestDatabase; project: TestProject; args: string[]; snapshot: string; runId: string }> {
  const { db, project, args, snapshot } = await snapshotThenLaterRows();
  await prepare(args, project);
  const before = await journalNames(project);
  const run = startBelay([...args, '--yes', ...command(snapshot)], { cwd: project.dir });
  let exited = false;
  void run.done.then(() => (exited = true));
  let runId: string | undefined;
  // the run's record is in the database from before the restore; pg_restore's one transaction replaces belay.runs with the snapshot's
  await pollUntil(async () => {
    if (exited) throw new Error(`belay ended first: ${(await run.done).stderr}`);
    runId ??= runIdOf(await freshJournal(project.backups, before));
    return runId !== undefined && (await db.query('SELECT 1 FROM belay.runs WHERE id = $1::uuid', [runId])).length > 0;
  }, 'the restore run recorded');
  await pollUntil(async () => {
    if (exited) throw new Error(`belay ended first: ${(await run.done).stderr}`);
    return (await db.query('SELECT 1 FROM belay.runs WHERE id = $1::uuid', [runId])).length === 0;
  }, 'the snapshot in place');
  run.child.kill('SIGKILL');
  await run.done;
  return { db, project, args, snapshot, runId: runId! };
}

describe('a restore killed once the snapshot replaced the database', () => {
  it('killed in its afterRestore hook, then written to: recover does not restore again over the new row (12, the difference named)', async () => {
    const { db, project, args, snapshot } = await snapshotThenLaterRows();
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify({ hooks: { afterRestore: { run: 'sleep 5', timeoutSeconds: 30 } } }));
    const before = await journalNames(project);
    const run = startBelay([...args, '--yes', 'restore', snapshot], { cwd: project.dir });
    let exited = false;
    void run.done.then(() => (exited = true));
    await pollUntil(async () => {
      if (exited) throw new Error(`belay ended first: ${(await run.done).stderr}`);
      return (await freshJournal(project.backups, before)).some((l) => l.step === 'hook' && l.event === 'start');
    }, 'the afterRestore hook');
    run.child.kill('SIGKILL');
    await run.done;
    await db.query("INSERT INTO t VALUES (0, 'after the restore')");
    const status = await belay([...args, '--json', 'status'], { cwd: project.dir });
    expect(jsonResult<{ interrupted: unknown }>(status).interrupted).toMatchObject({ action: 'verify-restore' });
    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stdout).toBe(12);
    expect(jsonResult<{ message: string }>(recover).message).toContain('belay did not restore it again');
    expect(await db.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: ROWS + 1 }]);
  });

  it('rollback --restore-from, in place, after pg_restore committed: recover verifies it at the revision the snapshot holds, not the one the rollback started from', async () => {
    const { db, args, project } = await killedInPlaceAfterCommit(
      (snapshot) => ['rollback', '--to', '0001', '--restore-from', snapshot, '--strategy', 'in-place'],
      async (args, project) => {
        await writeFile(join(project.migrations, '0002_u.up.sql'), 'CREATE TABLE u (id int);');
        await writeFile(join(project.migrations, '0002_u.down.sql'), 'DROP TABLE u;');
        expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
      },
    );
    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stdout).toBe(0);
    expect(jsonResult<{ message: string }>(recover).message).toMatch(/the restored data verified intact at 0001_t$/);
    expect(await db.query("SELECT name FROM belay.migrations")).toEqual([{ name: '0001_t' }]);
  });

  it('in place, after pg_restore committed: status names the restore run, prune keeps the copy of what it replaced, recover verifies without restoring again', async () => {
    const { db, project, args, snapshot, runId } = await killedInPlaceAfterCommit();
    // killed before it wrote itself into the restored copy again
    expect(await db.query('SELECT 1 FROM belay.runs WHERE id = $1::uuid', [runId])).toEqual([]);
    expect(await db.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: ROWS }]);
    const [kept] = await quarantineSnapshots(project);
    expect(kept).toBeDefined();

    const status = await belay([...args, '--json', 'status'], { cwd: project.dir });
    expect(status.code, status.stderr).toBe(0);
    const interrupted = jsonResult<{ interrupted: { run: { runId: string }; action: string; why: string } }>(status).interrupted;
    expect(interrupted).toMatchObject({ run: { runId }, action: 'verify-restore' });
    expect(interrupted.why).toContain(`its state before the restore is kept as snapshot ${kept}`);

    const prune = await belay([...args, 'backups', 'prune', '--keep', '0', '--yes'], { cwd: project.dir });
    expect(prune.code, prune.stderr).toBe(0);
    expect(await exists(join(project.backups, `${kept}.manifest.json`))).toBe(true);
    expect(await exists(join(project.backups, `${snapshot}.manifest.json`))).toBe(true);

    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stdout).toBe(0);
    const said = JSON.parse(recover.stdout) as { message: string; result: { restore?: unknown } };
    expect(said.message).toContain(`settling run ${runId}: it stopped while restoring snapshot ${snapshot}, after the snapshot had replaced the database`);
    expect(said.message).toContain('the restored data verified intact');
    // verified, not restored a second time
    expect(said.result.restore).toBeUndefined();
    expect(await quarantineSnapshots(project)).toEqual([kept]);
    expect(await db.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: ROWS }]);
    const journal = await readFile(join(project.backups, 'journal', `${runId}.jsonl`), 'utf8');
    // the run said so itself once pg_restore committed, or (killed before that line) the recover did
    expect(journal.includes(`snapshot ${snapshot} had replaced it`) || journal.includes(`"replaced":"${db.name}"`)).toBe(true);
    await settledOnce(args, project, runId);
  });

  it('in place, after pg_restore committed, then written to by the application: recover does not restore again over the new row (12, the difference named)', async () => {
    const { db, project, args, snapshot } = await killedInPlaceAfterCommit();
    await db.query("INSERT INTO t VALUES (0, 'written after the restore')");
    const [kept] = await quarantineSnapshots(project);

    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stdout).toBe(12);
    const said = JSON.parse(recover.stdout) as { message: string; next: string; result: { restore?: unknown } };
    expect(said.message).toContain(`public.t had ${ROWS} rows, now ${ROWS + 1}`);
    expect(said.message).toContain('belay did not restore it again');
    expect(said.next).toContain(`belay restore ${snapshot}`);
    expect(said.result.restore).toBeUndefined();
    expect(await quarantineSnapshots(project)).toEqual([kept]);
    expect(await db.query("SELECT count(*)::int AS n FROM t WHERE v = 'written after the restore'")).toEqual([{ n: 1 }]);
  });

  it('swapped in, killed after its renames: recover verifies the restored database and names the damaged one it set aside', async () => {
    const { db, project, args, snapshot } = await snapshotThenLaterRows();
    const before = await journalNames(project);
    const run = startBelay([...args, '--yes', 'restore', snapshot], { cwd: project.dir });
    let exited = false;
    void run.done.then(() => (exited = true));
    const c = cluster();
    const holder = new pg.Client({ host: c.socketDir, port: c.port, user: c.superuser, database: 'postgres' });
    await holder.connect();
    let copy: string | undefined;
    try {
      // the restored copy's rename into place waits on a lock held on it; let it go, then kill at once
      await pollUntil(async () => {
        if (exited) throw new Error(`belay ended first: ${(await run.done).stderr}`);
        const journal = await freshJournal(project.backups, before);
        copy = journal.map((l) => (l.detail as Record<string, unknown> | undefined)?.restoreCopy).find((v): v is string => typeof v === 'string');
        return copy !== undefined && journal.some((l) => Array.isArray((l.detail as Record<string, unknown> | undefined)?.connectionsOff));
      }, 'the swap to begin');
      await holder.query('BEGIN');
      await holder.query(`COMMENT ON DATABASE ${quoteIdent(copy!)} IS 'hold'`);
      const rename = `ALTER DATABASE ${quoteIdent(copy!)} RENAME TO`;
      await pollUntil(async () => {
        if (exited) throw new Error(`belay ended first: ${(await run.done).stderr}`);
        return (await adminQuery('postgres', "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND strpos(query, $1) > 0", [rename])).length > 0;
      }, `${rename} waiting`);
      // stopped while its rename waits, the lock let go, killed once the server ran the rename: the run's journal
      // never says so (killed outright instead, the server's 2 s check for a gone client may give the rename up)
      run.child.kill('SIGSTOP');
      await holder.query('ROLLBACK');
      await pollUntil(async () => (await adminQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [copy])).length === 0, 'the rename done');
      run.child.kill('SIGKILL');
      await run.done;
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
    }
    const journal = await freshJournal(project.backups, before);
    const runId = runIdOf(journal)!;
    expect(journal.some((l) => l.type === 'outcome')).toBe(false);
    const quarantines = await adminQuery<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${db.name}_quarantine_`]);
    expect(quarantines).toHaveLength(1);
    const quarantine = quarantines[0]!.datname;

    const status = await belay([...args, '--json', 'status'], { cwd: project.dir });
    expect(status.code, status.stderr).toBe(0);
    expect(jsonResult<{ interrupted: unknown }>(status).interrupted).toMatchObject({ run: { runId }, action: 'verify-restore' });

    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stdout).toBe(0);
    const said = JSON.parse(recover.stdout) as { message: string; result: { restore?: unknown } };
    expect(said.message).toContain(`the damaged database is kept as ${quarantine}`);
    expect(said.message).toContain('the restored data verified intact');
    expect(said.result.restore).toBeUndefined();
    expect(await db.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: ROWS }]);
    // the damaged one, with the rows written after the snapshot, is still there
    expect(await adminQuery(quarantine, 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: ROWS + 5 }]);
    await settledOnce(args, project, runId);
  });
});
