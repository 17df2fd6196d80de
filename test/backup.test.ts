import pg from 'pg';
import { execFileSync } from 'node:child_process';
import { readdir, readFile, rm, stat, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, cleanEnv, jsonResult, startBelay } from './support/cli.js';
import { adminQuery, cluster, freshDatabase, rejectOnMaintenanceDatabases, TEST_APP_PASSWORD, TEST_APP_ROLE } from './support/pg.js';
import { childrenOf, pollUntil } from './support/kill.js';
import { baseArgs, makeProject } from './support/project.js';

/**
 * The command lines of `root` and all its descendants, as the kernel shows
 * them to anyone on the machine. (Other tests running at the same time pass
 * passwords on their own command lines; they are not this run's children.)
 */
async function treeCmdlines(root: number): Promise<Array<{ pid: string; cmdline: string }>> {
  const parents = new Map<string, string>();
  const cmdlines = new Map<string, string>();
  for (const pid of (await readdir('/proc')).filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      parents.set(pid, stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]!);
      cmdlines.set(pid, (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replaceAll('\0', ' '));
    } catch {
      // the process ended
    }
  }
  const inTree = (pid: string): boolean => {
    for (let p: string | undefined = pid, depth = 0; p && depth < 20; p = parents.get(p), depth++) if (p === String(root)) return true;
    return false;
  };
  return [...cmdlines].filter(([pid]) => inTree(pid)).map(([pid, cmdline]) => ({ pid, cmdline }));
}

describe('snapshots', () => {
  it('no process shows the password on its command line while pg_dump runs, nor does any output or file', async () => {
    const db = await freshDatabase();
    await db.appQuery("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS payload FROM generate_series(1, 400000) g");
    const project = await makeProject({});
    // the URL comes through the environment: belay's own command line must not carry it either
    const run = startBelay(['--migrations', project.migrations, '--backups', project.backups, '--json', 'backup'], { env: cleanEnv({ DATABASE_URL: db.url }) });
    let sawPgDump = 0;
    const leaks: string[] = [];
    let finished = false;
    void run.done.then(() => (finished = true));
    while (!finished) {
      for (const { pid, cmdline } of await treeCmdlines(run.child.pid!)) {
        if (cmdline.includes('pg_dump')) sawPgDump++;
        if (cmdline.includes(TEST_APP_PASSWORD)) leaks.push(`${pid}: ${cmdline}`);
      }
    }
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    expect(sawPgDump).toBeGreaterThan(0);
    expect(leaks).toEqual([]);
    expect(result.stdout + result.stderr).not.toContain(TEST_APP_PASSWORD);
    const files = await readdir(project.backups, { recursive: true });
    for (const file of files) {
      const path = join(project.backups, file);
      if (!(await stat(path)).isFile()) continue;
      expect((await stat(path)).mode & 0o077, `${file} is private`).toBe(0);
      if (file.endsWith('.json') || file.endsWith('.jsonl')) expect(await readFile(path, 'utf8')).not.toContain(TEST_APP_PASSWORD);
    }
  });

  it('a pg_dump killed mid-dump (SIGKILL: no error of its own) is exit 4 saying so and how far it got, with no snapshot or partial file left', async () => {
    const db = await freshDatabase();
    await db.appQuery('CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS payload FROM generate_series(1, 600000) g');
    const project = await makeProject({});
    const run = startBelay([...baseArgs(project, db.url), '--json', 'backup']);
    let killed: number | undefined;
    // the kill point: pg_dump, a child of this belay, is copying the table's rows
    await pollUntil(async () => {
      const dumping = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY %big%'");
      if (dumping[0]!.n === 0) return false;
      for (const pid of await childrenOf(run.child.pid!)) {
        if ((await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes('pg_dump')) killed = pid;
      }
      return killed !== undefined;
    }, 'pg_dump copying the rows of big');
    process.kill(killed!, 'SIGKILL');
    const result = await run.done;
    expect(result.code, result.stdout).toBe(4);
    const envelope = JSON.parse(result.stdout) as { message: string; next: string | null };
    expect(envelope.message).toMatch(/pg_dump of .* failed: killed by SIGKILL; its last line: pg_dump: dumping contents of table "public.big"$/);
    expect(envelope.next).toBeTruthy();
    expect((await readdir(project.backups)).filter((file) => file !== 'journal')).toEqual([]);
  });

  it('lists, verifies, refuses a tampered snapshot (exit 4) and prunes to the newest N', async () => {
    const db = await freshDatabase();
    await db.appQuery('CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000)');
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const run = await belay([...args, '--json', 'backup']);
      expect(run.code, run.stderr).toBe(0);
      ids.push((jsonResult(run) as { snapshot: { id: string } }).snapshot.id);
    }
    const list = jsonResult(await belay([...args, '--json', 'backups', 'list'])) as { snapshots: Array<{ id: string }> };
    expect(list.snapshots.map((s) => s.id)).toEqual([...ids].reverse());
    expect((await belay([...args, 'backups', 'verify', ids[0]!])).code).toBe(0);
    const handle = await open(join(project.backups, `${ids[0]}.dump`), 'r+');
    await handle.write(Buffer.from('tampered'), 0, 8, 100);
    await handle.close();
    const verify = await belay([...args, 'backups', 'verify', ids[0]!]);
    expect(verify.code).toBe(4);
    expect(verify.stdout).toMatch(/sha256 is [0-9a-f]+, the manifest says/);
    const restore = await belay([...args, '--yes', 'restore', ids[0]!]);
    // found before anything is touched: a refusal, not "manual action needed"
    expect(restore.code).toBe(4);
    expect(restore.stderr).toMatch(/does not match its manifest/);
    expect(restore.stderr).toMatch(/next: .*belay backups list/);
    expect((await db.query('SELECT count(*)::int AS n FROM t'))[0]?.n).toBe(1000);
    const unknown = await belay([...args, 'backups', 'verify', 'nope']);
    expect(unknown.code).toBe(2);
    const prune = jsonResult(await belay([...args, '--json', 'backups', 'prune', '--keep', '1'])) as { removed: string[] };
    expect(prune.removed.sort()).toEqual([ids[0], ids[1]].sort());
    expect((await readdir(project.backups)).filter((f) => f.endsWith('.dump'))).toEqual([`${ids[2]}.dump`]);
    expect((await belay([...args, 'backups', 'prune', '--keep', 'all'])).code).toBe(2);
  });

  it('a snapshot whose dump was removed by hand is refused by name in the listing and by restore (exit 4; it was listed as sound, and offered as a source); a backups folder that is a file is exit 2, not "0 snapshot(s)"', async () => {
    const db = await freshDatabase();
    await db.appQuery('CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10)');
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push((jsonResult(await belay([...args, '--json', 'backup'])) as { snapshot: { id: string } }).snapshot.id);
    await rm(join(project.backups, `${ids[0]}.dump`));
    const list = await belay([...args, '--json', 'backups', 'list']);
    expect(list.code, list.stderr).toBe(4);
    const listing = jsonResult(list) as { snapshots: Array<{ id: string }>; refused: Array<{ file: string; problem: string }> };
    expect(listing.snapshots.map((s) => s.id)).toEqual([ids[1]]);
    expect(listing.refused).toEqual([expect.objectContaining({ file: `${ids[0]}.manifest.json`, problem: `its dump ${ids[0]}.dump is missing` })]);
    const restore = await belay([...args, '--yes', 'restore', ids[0]!]);
    expect(restore.code, restore.stderr).toBe(4);
    expect(restore.stderr).toContain(`its dump ${ids[0]}.dump is missing`);
    expect(restore.stderr).toMatch(/next: .*Put .*\.dump back beside its manifest/);

    const notFolder = join(project.dir, 'not-a-folder');
    await writeFile(notFolder, 'x');
    const listed = await belay(['--database-url', db.url, '--migrations', project.migrations, '--backups', notFolder, 'backups', 'list']);
    expect(listed.code, listed.stdout + listed.stderr).toBe(2);
    expect(listed.stderr).toMatch(/the backups folder .*not-a-folder cannot be listed \(it is not a folder\)/);
    expect(listed.stderr).toMatch(/next: /);
  });

  it('swap restore puts the snapshot back and keeps the damaged database as a quarantine', async () => {
    const db = await freshDatabase();
    await db.appQuery("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 300) g");
    const reader = `reader_${db.name}`;
    await adminQuery('postgres', `CREATE ROLE ${reader}`);
    await db.appQuery(`GRANT SELECT ON t TO ${reader}`);
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    const id = (jsonResult(await belay([...args, '--json', 'backup'])) as { snapshot: { id: string } }).snapshot.id;
    await db.query("DELETE FROM t WHERE id > 100; UPDATE t SET v = 'damaged'");
    const run = await belay([...args, '--json', 'restore', id]);
    expect(run.code, run.stderr).toBe(0);
    const result = jsonResult(run) as { restore: { strategy: string; quarantine: string } };
    expect(result.restore.strategy).toBe('swap');
    expect(await db.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE v = 'damaged')::int AS d FROM t")).toEqual([{ n: 300, d: 0 }]);
    expect(await adminQuery(result.restore.quarantine, "SELECT count(*)::int AS n, count(*) FILTER (WHERE v = 'damaged')::int AS d FROM t")).toEqual([{ n: 100, d: 100 }]);
    // the application's grants come back with the data
    expect(await db.query(`SELECT has_table_privilege('${reader}', 't', 'SELECT') AS ok`)).toEqual([{ ok: true }]);
    // the snapshot caught its own `belay backup` run mid-way: the copy holds that run's journal, not an interrupted run
    expect(await db.query("SELECT command, status FROM belay.runs ORDER BY started_at")).toEqual([
      { command: 'backup', status: 'ok' },
      { command: 'restore', status: 'ok' },
    ]);
    expect((await belay([...args, 'backup'])).code).toBe(0);
  });

  it("a database whose name holds '=', a quote and a backslash is restored, by swap and in place (pg_restore read the name as a connection string: exit 4)", async () => {
    const db = await freshDatabase("shop=eu o'k\\x");
    // (node-postgres's URL parsing leaves %3D encoded: made as the app role through the admin socket)
    await db.query(`SET ROLE ${TEST_APP_ROLE}; CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g`);
    const args = baseArgs(await makeProject({}), db.url);
    const id = (jsonResult(await belay([...args, '--json', 'backup'])) as { snapshot: { id: string } }).snapshot.id;
    for (const strategy of ['swap', 'in-place']) {
      await db.query("UPDATE t SET v = 'damaged'");
      const run = await belay([...args, '--json', 'restore', id, '--strategy', strategy]);
      expect(run.code, strategy + run.stderr).toBe(0);
      expect(await db.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE v = 'damaged')::int AS d FROM t")).toEqual([{ n: 50, d: 0 }]);
    }
  });

  it('the snapshot is of the very moment fingerprinted: with the application writing throughout, the restore still verifies', async () => {
    const db = await freshDatabase();
    await db.appQuery('CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())');
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    const writer = new pg.Client({ connectionString: db.url });
    await writer.connect();
    let writing = true;
    let written = 0;
    const writes = (async () => {
      while (writing) {
        await writer.query('INSERT INTO events DEFAULT VALUES');
        written++;
      }
    })();
    let backup;
    try {
      backup = await belay([...args, '--json', 'backup']);
    } finally {
      writing = false;
      await writes;
      await writer.end();
    }
    expect(backup.code, backup.stderr).toBe(0);
    expect(written).toBeGreaterThan(50);
    const id = (jsonResult(backup) as { snapshot: { id: string } }).snapshot.id;
    const restore = await belay([...args, '--json', 'restore', id]);
    expect(restore.code, restore.stdout).toBe(0);
    const n = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM events'))[0]?.n ?? 0;
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(written);
  });

  it('a session the role cannot end makes the restore go in place; a lock held there times out, leaving the database as it was', async () => {
    const db = await freshDatabase();
    await db.appQuery("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 300) g");
    const project = await makeProject({}, { database: { lockTimeoutSeconds: 1 } });
    const args = baseArgs(project, db.url);
    const backup = await belay([...args, '--json', 'backup'], { cwd: project.dir });
    const id = (jsonResult(backup) as { snapshot: { id: string } }).snapshot.id;
    await db.query("UPDATE t SET v = 'damaged'");
    // a superuser's session on the database, holding a lock: the application role can end neither
    const superuser = new pg.Client({ host: cluster().socketDir, port: cluster().port, user: cluster().superuser, database: db.name });
    await superuser.connect();
    try {
      await superuser.query('BEGIN; LOCK TABLE t IN ACCESS SHARE MODE');
      const blocked = await belay([...args, '--json', 'restore', id], { cwd: project.dir });
      // nothing was dropped before pg_restore, whose one transaction rolled back: refused (4), not manual action
      expect(blocked.code, blocked.stdout + blocked.stderr).toBe(4);
      expect(blocked.stderr).toMatch(/restoring in place instead of swapping: sessions of postgres are connected and this role cannot end them/);
      expect(blocked.stdout).toMatch(/pg_restore waited longer than database\.lockTimeoutSeconds \(1 s\) for a lock another session holds/);
      expect(await db.query("SELECT count(*) FILTER (WHERE v = 'damaged')::int AS d FROM t")).toEqual([{ d: 300 }]);
      await superuser.query('COMMIT');
      const restored = await belay([...args, '--json', 'restore', id], { cwd: project.dir });
      expect(restored.code, restored.stderr).toBe(0);
      expect((jsonResult(restored) as { restore: { strategy: string } }).restore.strategy).toBe('in-place');
      expect(await db.query("SELECT count(*) FILTER (WHERE v = 'damaged')::int AS d FROM t")).toEqual([{ d: 0 }]);
    } finally {
      await superuser.end();
    }
  });

  it('pg_dump waits for a table lock no longer than database.lockTimeoutSeconds', async () => {
    const db = await freshDatabase();
    await db.appQuery('CREATE TABLE t (id int)');
    // no fingerprint (integrity off): pg_dump is the one that meets the lock
    const project = await makeProject({}, { database: { lockTimeoutSeconds: 1 }, integrity: { mode: 'off' } });
    const holder = new pg.Client({ host: cluster().socketDir, port: cluster().port, user: cluster().superuser, database: db.name });
    await holder.connect();
    try {
      await holder.query('BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
      const run = await belay([...baseArgs(project, db.url), 'backup'], { cwd: project.dir, timeoutMs: 30_000 });
      expect(run.code).toBe(4);
      expect(run.stderr).toMatch(/next: Nothing was changed\. A table lock was held longer than database\.lockTimeoutSeconds \(1 s\)/);
      expect((await readdir(project.backups)).filter((f) => f.endsWith('.dump') || f.endsWith('.partial'))).toEqual([]);
      // with the fingerprint (strict) running beside the dump, its failure stops the dump too
      await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify({ database: { lockTimeoutSeconds: 1 } }));
      const strict = await belay([...baseArgs(project, db.url), 'backup'], { cwd: project.dir, timeoutMs: 30_000 });
      expect(strict.code).toBe(4);
      expect(strict.stderr).toMatch(/cannot fingerprint the protected tables: canceling statement due to lock timeout/);
      expect((await readdir(project.backups)).filter((f) => f.endsWith('.dump') || f.endsWith('.partial'))).toEqual([]);
    } finally {
      await holder.end();
    }
  });

  it('a role that may connect to no maintenance database (pg_hba rejects it on postgres and template1) restores in place, not "may be partly restored" (exit 12)', async () => {
    const c = cluster();
    const role = `nomaint_${Date.now()}`;
    await adminQuery('postgres', `CREATE ROLE ${role} LOGIN CREATEDB PASSWORD 'pw-${role}'`);
    const db = await freshDatabase();
    await db.query(`ALTER DATABASE ${db.name} OWNER TO ${role}; GRANT CREATE ON DATABASE ${db.name} TO ${role}; ALTER SCHEMA public OWNER TO ${role}`);
    await rejectOnMaintenanceDatabases(role);
    const url = `postgresql://${role}:pw-${role}@127.0.0.1:${c.port}/${db.name}`;
    const project = await makeProject({ '0001_t.up.sql': "CREATE TABLE t (id int PRIMARY KEY, v text);\nINSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 200) g;", '0001_t.down.sql': 'DROP TABLE t;' });
    const args = baseArgs(project, url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (jsonResult(backup) as { snapshot: { id: string } }).snapshot.id;
    await db.query('UPDATE t SET v = upper(v)');
    const run = await belay([...args, '--json', 'restore', id, '--strategy', 'swap', '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const { restore } = jsonResult(run) as { restore: { strategy: string; message: string } };
    expect(restore.strategy).toBe('in-place');
    expect(restore.message).toMatch(/in place and verified it/);
    expect(run.stderr).toMatch(/restoring in place instead of swapping: the role can connect to no other database \(postgres, template1\)/);
    expect(await db.query('SELECT count(*) FILTER (WHERE v = lower(v))::int AS ok FROM t')).toEqual([{ ok: 200 }]);
  });

  it('in-place restore works for a role without CREATEDB, and keeps the damaged state as a snapshot first', async () => {
    const c = cluster();
    const role = `nocreatedb_${Date.now()}`;
    await adminQuery('postgres', `CREATE ROLE ${role} LOGIN PASSWORD 'pw-${role}'`);
    const db = await freshDatabase();
    await db.query(`ALTER DATABASE ${db.name} OWNER TO ${role}; GRANT CREATE ON DATABASE ${db.name} TO ${role}`);
    const url = `postgresql://${role}:pw-${role}@127.0.0.1:${c.port}/${db.name}`;
    const project = await makeProject({
      '0001_t.up.sql': "CREATE TABLE t (id int PRIMARY KEY, v text);\nINSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 200) g;",
      '0001_t.down.sql': 'DROP TABLE t;',
      '0002_lossy.up.sql': "UPDATE t SET v = upper(v);\nALTER TABLE t ADD COLUMN w int;",
      '0002_lossy.down.sql': 'ALTER TABLE t DROP COLUMN w;',
      '0003_fails.up.sql': 'SELECT 1 / 0;',
      '0003_fails.down.sql': 'SELECT 1;',
    });
    expect((await belay([...baseArgs(project, url), 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const run = await belay([...baseArgs(project, url), '--json', 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stderr).toBe(11);
    const { restore } = jsonResult(run) as { restore: { strategy: string; quarantineSnapshot: string } };
    expect(restore.strategy).toBe('in-place');
    expect(await db.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE v = lower(v))::int AS ok FROM t")).toEqual([{ n: 200, ok: 200 }]);
    expect((await db.query('SELECT max(name) AS m FROM belay.migrations'))[0]?.m).toBe('0001_t');

    // nothing lost: the damaged state (upper-cased values) was dumped before the restore overwrote it
    const listed = await belay([...baseArgs(project, url), 'backups', 'list']);
    expect(listed.stdout).toMatch(new RegExp(`${restore.quarantineSnapshot}.*\\(quarantine`));
    const kept = await freshDatabase('kept');
    execFileSync(join(c.binDir, 'pg_restore'), ['-h', c.socketDir, '-p', String(c.port), '-U', c.superuser, '-d', kept.name, '--no-owner', join(project.backups, `${restore.quarantineSnapshot}.dump`)]);
    expect(await kept.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE v = upper(v))::int AS damaged FROM t")).toEqual([{ n: 200, damaged: 200 }]);
  });
  it("a snapshot records the revision the database is at, not the newest of the revision files it was taken with (it said 0001_base from an older checkout, for a database at 0002_w)", async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_base.up.sql': 'CREATE TABLE t (id int);',
      '0001_base.down.sql': 'DROP TABLE t;',
      '0002_w.up.sql': 'CREATE TABLE w (id int);',
      '0002_w.down.sql': 'DROP TABLE w;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    // an older checkout: the files of 0001_base only
    const older = await makeProject({ '0001_base.up.sql': 'CREATE TABLE t (id int);', '0001_base.down.sql': 'DROP TABLE t;' });
    const olderArgs = ['--database-url', db.url, '--migrations', older.migrations, '--backups', project.backups];
    const backup = await belay([...olderArgs, '--json', 'backup']);
    expect(backup.code, backup.stdout + backup.stderr).toBe(0);
    const envelope = JSON.parse(backup.stdout) as { message: string; result: { snapshot: { id: string } } };
    const id = envelope.result.snapshot.id;
    expect(envelope.message).toMatch(/, at 0002_w, missing from disk\)$/);
    const manifest = JSON.parse(await readFile(join(project.backups, `${id}.manifest.json`), 'utf8')) as { revision: string | null };
    expect(manifest.revision).toBe('0002_w');
    expect((await belay([...olderArgs, 'backups', 'list'])).stdout).toMatch(new RegExp(`${id} .* ${db.name}@0002_w `));
    const status = JSON.parse((await belay([...olderArgs, '--json', 'status'])).stdout) as { result: { current: string } };
    expect(status.result.current).toBe('0002_w');
    // a rollback to 0001_base refuses it: it would put back a database at 0002_w
    const rollback = await belay([...args, '--yes', 'rollback', '--to', '0001_base', '--restore-from', id]);
    expect(rollback.code, rollback.stdout + rollback.stderr).toBe(4);
    expect(rollback.stderr).toContain(`snapshot ${id} was taken at 0002_w, not at 0001_base (--to)`);
    expect(await db.query("SELECT to_regclass('w') IS NOT NULL AS w")).toEqual([{ w: true }]);
  });
});
