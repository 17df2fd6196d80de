import { describe, expect, it } from 'vitest';
import { belay } from './support/cli.js';
import { adminQuery, cluster, freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

/** A database owned by a fresh login role (CREATEDB or not) with `extensions` created by the superuser, as a DBA installs them. */
async function databaseWithDbaExtensions(createdb: boolean, extensions: string[]): Promise<{ db: TestDatabase; url: string; role: string }> {
  const role = `ext_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  await adminQuery('postgres', `CREATE ROLE ${role} LOGIN ${createdb ? 'CREATEDB' : 'NOCREATEDB'} PASSWORD 'pw-${role}'`);
  const db = await freshDatabase();
  await db.query(`ALTER DATABASE ${db.name} OWNER TO ${role}; ALTER SCHEMA public OWNER TO ${role}`);
  for (const extension of extensions) await db.query(`CREATE EXTENSION ${extension}`);
  await db.query(`SET ROLE ${role}; CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)`);
  return { db, url: `postgresql://${role}:pw-${role}@127.0.0.1:${cluster().port}/${db.name}`, role };
}

const extensionsOf = async (db: TestDatabase): Promise<Array<{ name: string; owner: string }>> =>
  db.query("SELECT extname AS name, pg_get_userbyid(extowner)::text AS owner FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1");

describe('extensions a superuser installed, restored by the database owner', () => {
  it.each([false, true])('an in-place restore keeps them (CREATEDB: %s) and puts the data back', async (createdb) => {
    const { db, url } = await databaseWithDbaExtensions(createdb, ['pgcrypto', 'citext']);
    const project = await makeProject({});
    const args = baseArgs(project, url);
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    await db.query('UPDATE t SET id = 2');
    const run = await belay([...args, '--json', 'restore', id, '--strategy', 'in-place', '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(await db.query('SELECT id FROM t')).toEqual([{ id: 1 }]);
    expect(await extensionsOf(db)).toEqual([
      { name: 'citext', owner: cluster().superuser },
      { name: 'pgcrypto', owner: cluster().superuser },
    ]);
  });

  it('a corrupting revision in migrate up --with-backup by a role without CREATEDB ends 11 with the data back', async () => {
    const { db, url } = await databaseWithDbaExtensions(false, ['pgcrypto']);
    const project = await makeProject({
      '0001_bump.up.sql': 'UPDATE t SET id = 2;',
      '0001_bump.down.sql': 'SELECT 1;',
      '0002_fails.up.sql': 'SELECT 1 / 0;',
      '0002_fails.down.sql': 'SELECT 1;',
    });
    const run = await belay([...baseArgs(project, url), '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full']);
    expect(run.code, run.stdout + run.stderr).toBe(11);
    expect(await db.query('SELECT id FROM t')).toEqual([{ id: 1 }]);
    expect(await extensionsOf(db)).toEqual([{ name: 'pgcrypto', owner: cluster().superuser }]);
  });

  it('a swap makes trusted extensions as the restoring role, and says their owner was not restored', async () => {
    const { db, url, role } = await databaseWithDbaExtensions(true, ['pgcrypto', 'citext']);
    const project = await makeProject({});
    const args = baseArgs(project, url);
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    await db.query('UPDATE t SET id = 2');
    const run = await belay([...args, '--json', 'restore', id, '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const { restore } = JSON.parse(run.stdout).result as { restore: { strategy: string; ownersReplaced: string[]; message: string } };
    expect(restore.strategy).toBe('swap');
    expect(restore.ownersReplaced).toContain(cluster().superuser);
    expect(restore.message).toContain(`ownership was not restored: what ${restore.ownersReplaced.join(', ')} owned in the snapshot now belongs to ${role} (extension(s) citext, ${cluster().superuser}'s in the damaged database; pgcrypto, ${cluster().superuser}'s in the damaged database)`);
    expect(await db.query('SELECT id FROM t')).toEqual([{ id: 1 }]);
    expect(await extensionsOf(db)).toEqual([
      { name: 'citext', owner: role },
      { name: 'pgcrypto', owner: role },
    ]);
  });

  it('a swap that would have to create an untrusted extension is refused before anything is touched (exit 4, next: in place)', async () => {
    expect(await adminQuery('postgres', "SELECT 1 AS ok FROM pg_available_extensions WHERE name = 'pg_stat_statements'")).toEqual([{ ok: 1 }]);
    const { db, url } = await databaseWithDbaExtensions(true, ['pg_stat_statements']);
    const project = await makeProject({});
    const args = baseArgs(project, url);
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    await db.query('UPDATE t SET id = 2');
    const run = await belay([...args, 'restore', id, '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(4);
    expect(run.stderr).toMatch(/extension\(s\) pg_stat_statements, which only a superuser may create/);
    expect(run.stderr).toContain(`--strategy in-place`);
    expect(await db.query('SELECT id FROM t')).toEqual([{ id: 2 }]);
    // no restore copy, no quarantine: the database is the one it was (other test files make databases meanwhile)
    expect(await adminQuery('postgres', "SELECT datname FROM pg_database WHERE datname LIKE $1 || '\\_%'", [db.name])).toEqual([]);
  });

  it('in a run, a swap that cannot create an untrusted extension restores in place instead, and says so', async () => {
    const { db, url } = await databaseWithDbaExtensions(true, ['pg_stat_statements']);
    const project = await makeProject({
      '0001_bump.up.sql': 'UPDATE t SET id = 2;',
      '0001_bump.down.sql': 'SELECT 1;',
      '0002_fails.up.sql': 'SELECT 1 / 0;',
      '0002_fails.down.sql': 'SELECT 1;',
    });
    const run = await belay([...baseArgs(project, url), '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full']);
    expect(run.code, run.stdout + run.stderr).toBe(11);
    expect(run.stderr).toMatch(/restoring in place instead of swapping: snapshot \S+ has extension\(s\) pg_stat_statements/);
    const { restore } = JSON.parse(run.stdout).result as { restore: { strategy: string; message: string } };
    expect(restore.message).toMatch(/in place instead of swapping: snapshot \S+ has extension\(s\) pg_stat_statements, which only a superuser may create/);
    expect(restore.strategy).toBe('in-place');
    expect(await db.query('SELECT id FROM t')).toEqual([{ id: 1 }]);
    expect(await extensionsOf(db)).toEqual([{ name: 'pg_stat_statements', owner: cluster().superuser }]);
  });
});
