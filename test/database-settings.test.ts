import { describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/db/ident.js';
import { belay, startBelay } from './support/cli.js';
import { adminQuery, freshDatabase, TEST_APP_ROLE, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

/** What pg_db_role_setting holds for the databases named `name` or `name_…` (a quarantine), by database and role. */
const settingsOf = async (name: string): Promise<Array<{ datname: string; role: string | null; setconfig: string[] }>> =>
  adminQuery(
    'postgres',
    `SELECT d.datname, r.rolname AS role, s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
       LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname = $1 OR d.datname LIKE $1 || '\\_%' ORDER BY 1, 2 NULLS FIRST`,
    [name],
  );

/** A database of the application role with a table, its own settings and one of the role in it, as its owner sets them. */
async function databaseWithSettings(): Promise<TestDatabase> {
  const db = await freshDatabase();
  await db.appQuery(`CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
    ALTER DATABASE ${db.name} SET timezone = 'America/New_York';
    ALTER DATABASE ${db.name} SET search_path = "$user", public, "odd ""name""";
    ALTER ROLE ${TEST_APP_ROLE} IN DATABASE ${db.name} SET statement_timeout = '7s'`);
  return db;
}

const OWN_SETTINGS = [
  { role: null, setconfig: ['TimeZone=America/New_York', 'search_path="$user", public, "odd ""name"""'] },
  { role: TEST_APP_ROLE, setconfig: ['statement_timeout=7s'] },
];

describe('the settings of the database (ALTER DATABASE/ROLE … IN DATABASE … SET) across a restore', () => {
  it('a swap carries them over to the restored database; the quarantined one keeps its own', async () => {
    const db = await databaseWithSettings();
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    await db.query('UPDATE t SET id = 2');
    const run = await belay([...args, '--json', 'restore', id, '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const { restore } = JSON.parse(run.stdout).result as { restore: { strategy: string; quarantine: string } };
    expect(restore.strategy).toBe('swap');
    expect(await db.query('SELECT id FROM t')).toEqual([{ id: 1 }]);
    expect(await settingsOf(db.name)).toEqual([
      ...OWN_SETTINGS.map((setting) => ({ datname: db.name, ...setting })),
      ...OWN_SETTINGS.map((setting) => ({ datname: restore.quarantine, ...setting })),
    ]);
    expect(await db.appQuery("SELECT current_setting('TimeZone') AS zone, current_setting('statement_timeout') AS timeout")).toEqual([{ zone: 'America/New_York', timeout: '7s' }]);
  });

  it('a swap that could not carry a superuser-only setting over is refused before anything is touched (exit 4, next: in place)', async () => {
    const db = await databaseWithSettings();
    await db.query(`ALTER DATABASE ${db.name} SET log_min_duration_statement = 250`);
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    await db.query('UPDATE t SET id = 2');
    const run = await belay([...args, 'restore', id, '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(4);
    expect(run.stderr).toContain(`the role may not give the new database a swap restores into the settings ${db.name} has: log_min_duration_statement (permission denied to set parameter "log_min_duration_statement")`);
    expect(run.stderr).toContain(`next: Restore in place, which keeps the settings ${db.name} has: belay restore ${id} --strategy in-place; or restore as a superuser. Nothing was changed.`);
    expect(await db.query('SELECT id FROM t')).toEqual([{ id: 2 }]);
    // no restore copy, no quarantine, the settings as they were
    expect((await settingsOf(db.name)).map((row) => row.datname)).toEqual([db.name, db.name]);
    expect(await adminQuery('postgres', "SELECT datname FROM pg_database WHERE datname LIKE $1 || '\\_%'", [db.name])).toEqual([]);
  });

  it('in a run, a swap that could not carry them over restores in place instead, which keeps them, and says so', async () => {
    const db = await databaseWithSettings();
    await db.query(`ALTER DATABASE ${db.name} SET log_min_duration_statement = 250`);
    const project = await makeProject({
      '0001_bump.up.sql': 'UPDATE t SET id = 2;',
      '0001_bump.down.sql': 'SELECT 1;',
      '0002_fails.up.sql': 'SELECT 1 / 0;',
      '0002_fails.down.sql': 'SELECT 1;',
    });
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full']);
    expect(run.code, run.stdout + run.stderr).toBe(11);
    const { restore } = JSON.parse(run.stdout).result as { restore: { strategy: string; message: string } };
    expect(restore.strategy).toBe('in-place');
    expect(restore.message).toContain(`(in place instead of swapping: the role may not give the new database a swap restores into the settings ${db.name} has: log_min_duration_statement`);
    expect(await db.query('SELECT id FROM t')).toEqual([{ id: 1 }]);
    expect(await settingsOf(db.name)).toEqual([
      { datname: db.name, role: null, setconfig: [...OWN_SETTINGS[0]!.setconfig, 'log_min_duration_statement=250'] },
      { datname: db.name, ...OWN_SETTINGS[1]! },
    ]);
  });
});

describe("a database whose DateStyle is not ISO (ALTER DATABASE … SET datestyle)", () => {
  for (const dateStyle of ['German', 'SQL, DMY']) {
    it(`${dateStyle}: every command reads belay's times right; the revisions keep the database's date order and output`, async () => {
      const db = await freshDatabase();
      await db.query(`ALTER DATABASE ${db.name} SET datestyle = '${dateStyle}'`);
      const project = await makeProject({
        '0001_days.up.sql': "CREATE TABLE days (d date); INSERT INTO days VALUES ('01.02.2024'::date);",
        '0001_days.down.sql': 'DROP TABLE days;',
        '0002_shown.up.sql': "CREATE TABLE shown AS SELECT '2024-02-01'::date::text AS d;",
        '0002_shown.down.sql': 'DROP TABLE shown;',
      });
      const cli = async (...command: string[]): Promise<ReturnType<typeof JSON.parse>> => {
        const run = await belay([...baseArgs(project, db.url), '--json', ...command]);
        expect(run.code, `${command.join(' ')}: ${run.stdout}${run.stderr}`).toBe(0);
        return JSON.parse(run.stdout).result;
      };
      const before = Date.now() - 1000;
      await cli('migrate', 'up', '--to', '0001');
      const recorded = async (): Promise<string[]> =>
        (await db.query<{ at: string }>(`SELECT to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at FROM belay.migrations ORDER BY name`)).map((row) => row.at);
      const status = JSON.stringify(await cli('status'));
      for (const at of await recorded()) expect(status).toContain(at);
      const history = JSON.stringify(await cli('history'));
      const started = [...history.matchAll(/"startedAt":"([^"]+)"/g)].map((match) => Date.parse(match[1]!));
      expect(started.length).toBeGreaterThan(0);
      for (const at of started) expect(at).toBeGreaterThan(before);
      await cli('migrate', 'up');
      await cli('rollback', '--to', '0001');
      await cli('migrate', 'up');
      expect(JSON.stringify(await cli('status'))).toContain((await recorded())[1]!);
      expect(await db.query("SELECT to_char(d, 'YYYY-MM-DD') AS d FROM days")).toEqual([{ d: '2024-02-01' }]);
      expect(await db.query('SELECT d FROM shown')).toEqual([{ d: dateStyle === 'German' ? '01.02.2024' : '01/02/2024' }]);
    });
  }

  for (const dateStyle of ['German', 'SQL, DMY', 'Postgres, DMY']) {
    it(`${dateStyle}: a health check's timestamp is read as it is (healthy, exit 0; changed, exit 10), its literals in the database's date order`, async () => {
      const db = await freshDatabase();
      await db.query(`ALTER DATABASE ${db.name} SET datestyle = '${dateStyle}'`);
      const revisions = { '0001_days.up.sql': 'CREATE TABLE days (d date);', '0001_days.down.sql': 'DROP TABLE days;' };
      // 01.02.2024 is the 1st of February in the database's day-month order
      const healthy = await makeProject(revisions, { health: { sql: [{ name: 'deployed at', query: "SELECT '01.02.2024 12:00:00+00'::timestamptz", expect: { equals: '2024-02-01T12:00:00.000Z' } }] } });
      const run = await belay([...baseArgs(healthy, db.url), 'migrate', 'up'], { cwd: healthy.dir });
      expect(run.code, run.stdout + run.stderr).toBe(0);
      expect(await db.query('SELECT name FROM belay.migrations')).toEqual([{ name: '0001_days' }]);

      await db.query('DROP TABLE days; DROP SCHEMA belay CASCADE');
      const query = "SELECT CASE WHEN to_regclass('days') IS NULL THEN '01.02.2024 12:00:00+00'::timestamptz ELSE '02.03.2024 12:00:00+00'::timestamptz END";
      const changed = await makeProject(revisions, { health: { sql: [{ name: 'deployed at', query, expect: { equals: '2024-02-01T12:00:00.000Z' } }] } });
      const failed = await belay([...baseArgs(changed, db.url), 'migrate', 'up', '--health-timeout', '1'], { cwd: changed.dir });
      expect(failed.code, failed.stdout + failed.stderr).toBe(10);
      expect(failed.stderr).toContain('got "2024-03-02T12:00:00.000Z", expected "2024-02-01T12:00:00.000Z"');
      expect(await db.query("SELECT to_regclass('days') AS t")).toEqual([{ t: null }]);
    });
  }

  it('German: a dry run after a killed run names it and when it started (exit 4), read on a session that parses its time', async () => {
    const db = await freshDatabase();
    await db.query(`ALTER DATABASE ${db.name} SET datestyle = 'German'`);
    const project = await makeProject({ '0001_slow.up.sql': 'SELECT pg_sleep(3);', '0001_slow.down.sql': 'SELECT 1;' });
    const args = baseArgs(project, db.url);
    const killed = startBelay([...args, 'migrate', 'up']);
    // killed while its revision runs
    for (let i = 0; i < 500; i++) {
      if ((await db.query("SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3)%' AND pid <> pg_backend_pid()")).length > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    killed.child.kill('SIGKILL');
    await killed.done;
    const [run] = await db.query<{ id: string; started: string }>(`SELECT id::text, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS started FROM belay.runs WHERE status = 'running'`);
    expect(run).toBeDefined();
    const dry = await belay([...args, 'migrate', 'up', '--dry-run']);
    expect(dry.code, dry.stdout + dry.stderr).toBe(4);
    expect(dry.stderr).toContain(`run ${run!.id} (migrate-up by `);
    expect(dry.stderr).toContain(`started ${run!.started}) was interrupted at step "apply 0001_slow" and has not been settled`);
    expect(await db.query("SELECT status FROM belay.runs")).toEqual([{ status: 'running' }]);
  });
});

describe('the privileges on the database (GRANT/REVOKE … ON DATABASE) across a swap restore', () => {
  it('are the restored database\'s too: CONNECT revoked from PUBLIC stays revoked, a grant to another role stays (the copy had the defaults: both were lost)', async () => {
    const db = await freshDatabase();
    const role = `granted_${db.name.slice(2)}`;
    await adminQuery('postgres', `CREATE ROLE ${quoteIdent(role)}; REVOKE CONNECT, TEMPORARY ON DATABASE ${quoteIdent(db.name)} FROM PUBLIC;
      GRANT CONNECT ON DATABASE ${quoteIdent(db.name)} TO ${quoteIdent(role)}; GRANT CREATE ON DATABASE ${quoteIdent(db.name)} TO ${quoteIdent(role)} WITH GRANT OPTION`);
    const acl = (): Promise<unknown[]> => adminQuery('postgres', 'SELECT datdba::regrole::text AS owner, datacl::text AS acl FROM pg_database WHERE datname = $1', [db.name]);
    const before = await acl();
    const args = baseArgs(await makeProject({}), db.url);
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    const run = await belay([...args, '--json', 'restore', id, '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect((JSON.parse(run.stdout).result as { restore: { strategy: string } }).restore.strategy).toBe('swap');
    expect(await acl()).toEqual(before);
  });
});
