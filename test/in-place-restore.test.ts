import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { archiveCatalog, compareWithArchive } from '../src/backup/archive-catalog.js';
import { belay, startBelay } from './support/cli.js';
import { adminQuery, cluster, freshDatabase, type TestDatabase } from './support/pg.js';
import { pollUntil } from './support/kill.js';
import { baseArgs, makeProject } from './support/project.js';

/** A login role without CREATEDB that owns a fresh database: belay must restore in place. */
async function databaseOwnedByRoleWithoutCreatedb(): Promise<{ db: TestDatabase; url: string }> {
  const role = `nocreatedb_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  await adminQuery('postgres', `CREATE ROLE ${role} LOGIN NOCREATEDB PASSWORD 'pw-${role}'`);
  const db = await freshDatabase();
  await db.query(`ALTER DATABASE ${db.name} OWNER TO ${role}; GRANT CREATE ON DATABASE ${db.name} TO ${role}; ALTER SCHEMA public OWNER TO ${role}`);
  return { db, url: `postgresql://${role}:pw-${role}@127.0.0.1:${cluster().port}/${db.name}` };
}

/** Every user object's name, by kind, outside the system schemas and belay's own. */
async function userObjects(db: TestDatabase): Promise<string[]> {
  const rows = await db.query<{ o: string }>(`
    SELECT 'rel ' || n.nspname || '.' || c.relname AS o FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r','v','m','S','p','f') AND n.nspname NOT IN ('pg_catalog','information_schema','belay') AND n.nspname NOT LIKE 'pg\\_%'
    UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog','information_schema','belay','public') AND nspname NOT LIKE 'pg\\_%'
    UNION ALL SELECT 'routine ' || n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog','information_schema','belay')
    UNION ALL SELECT 'type ' || n.nspname || '.' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype IN ('e','d') AND n.nspname NOT IN ('pg_catalog','information_schema','belay')
    ORDER BY 1`);
  return rows.map((r) => r.o);
}

function archiveList(file: string): string {
  return execFileSync(join(cluster().binDir, 'pg_restore'), ['--list', file], { encoding: 'utf8' });
}

describe('an in-place restore puts back exactly the snapshot', () => {
  it('objects a failed revision created are gone after the restore (kept in the quarantine snapshot), and the fixed revision then applies', async () => {
    const { db, url } = await databaseOwnedByRoleWithoutCreatedb();
    const project = await makeProject({
      '0001_t.up.sql': "CREATE TABLE t (id int PRIMARY KEY, v text);\nINSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 200) g;",
      '0001_t.down.sql': 'DROP TABLE t;',
      // a revision that damages data and leaves behind what its sloppy down does not remove
      '0002_audit.up.sql': [
        "UPDATE t SET v = upper(v);",
        'CREATE TABLE audit (id int PRIMARY KEY, t_id int REFERENCES t, note text);',
        "INSERT INTO audit SELECT g, g, 'note ' || g FROM generate_series(1, 50) g;",
        'CREATE VIEW t_upper AS SELECT id, v FROM t;',
        "CREATE TYPE mood AS ENUM ('ok', 'sad');",
        'CREATE FUNCTION t_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM t $$;',
        'CREATE SCHEMA scratch;',
        'CREATE TABLE scratch.leftover (id int);',
      ].join('\n'),
      '0002_audit.down.sql': 'SELECT 1;',
      '0003_fails.up.sql': 'SELECT 1 / 0;',
      '0003_fails.down.sql': 'SELECT 1;',
    });
    const args = baseArgs(project, url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const before = await userObjects(db);
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stdout + run.stderr).toBe(11);
    const { restore } = JSON.parse(run.stdout).result as { restore: { strategy: string; quarantineSnapshot: string; message: string } };
    expect(restore.strategy).toBe('in-place');
    expect(restore.message).toMatch(/object\(s\) created after the snapshot were dropped \(.*table public\.audit/);
    // exactly the snapshot's objects, and its data
    expect(await userObjects(db)).toEqual(before);
    expect(await db.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE v = lower(v))::int AS ok FROM t")).toEqual([{ n: 200, ok: 200 }]);
    // nothing lost: the dropped table and its rows are in the quarantine snapshot
    const kept = join(project.backups, `${restore.quarantineSnapshot}.dump`);
    expect(archiveList(kept)).toMatch(/TABLE DATA public audit /);
    const copy = await freshDatabase('kept');
    execFileSync(join(cluster().binDir, 'pg_restore'), ['-h', cluster().socketDir, '-p', String(cluster().port), '-U', cluster().superuser, '-d', copy.name, '--no-owner', kept]);
    expect(await copy.query('SELECT count(*)::int AS n FROM audit')).toEqual([{ n: 50 }]);

    // the fixed revision applies on the first try: no "relation already exists"
    await writeFile(join(project.migrations, '0002_audit.down.sql'), 'DROP TABLE audit;');
    await writeFile(join(project.migrations, '0002_audit.up.sql'), 'CREATE TABLE audit (id int PRIMARY KEY, t_id int REFERENCES t, note text);');
    await writeFile(join(project.migrations, '0003_fails.up.sql'), 'SELECT 1;');
    const fixed = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
    expect((await db.query('SELECT max(name) AS m FROM belay.migrations'))[0]?.m).toBe('0003_fails');
  });

  it('a restore by hand gets past objects that depend on the restored tables (a foreign key, a view), and the outcome compares with the snapshot', async () => {
    const { db, url } = await databaseOwnedByRoleWithoutCreatedb();
    const project = await makeProject({});
    const args = baseArgs(project, url);
    await db.query(`SET ROLE ${new URL(url).username}; CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g`);
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    await db.query(`SET ROLE ${new URL(url).username};
      CREATE TABLE child (id int PRIMARY KEY, t_id int NOT NULL REFERENCES t);
      INSERT INTO child SELECT g, g FROM generate_series(1, 10) g;
      CREATE VIEW t_names AS SELECT v FROM t;
      DELETE FROM t WHERE id > 50;`);
    const run = await belay([...args, '--json', 'restore', id, '--strategy', 'in-place']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const { restore } = JSON.parse(run.stdout).result as { restore: { quarantineSnapshot: string; message: string } };
    expect(restore.message).toMatch(/restored .* in place and verified it/);
    expect(await userObjects(db)).toEqual(['rel public.t']);
    expect(await db.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: 100 }]);
    expect(archiveList(join(project.backups, `${restore.quarantineSnapshot}.dump`))).toMatch(/TABLE DATA public child /);
  });

  it('a database with serial and identity columns restores in place and verifies (their sequences are the snapshot\'s)', async () => {
    const { db, url } = await databaseOwnedByRoleWithoutCreatedb();
    const project = await makeProject({});
    const args = baseArgs(project, url);
    await db.query(`SET ROLE ${new URL(url).username};
      CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text); INSERT INTO t (v) VALUES ('a');
      CREATE TABLE s (id serial PRIMARY KEY, v text); INSERT INTO s (v) VALUES ('b');`);
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    await db.query(`SET ROLE ${new URL(url).username}; INSERT INTO t (v) VALUES ('later'); ALTER TABLE s ADD COLUMN n bigserial`);
    const run = await belay([...args, '--json', 'restore', id, '--strategy', 'in-place', '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect((JSON.parse(run.stdout).result as { restore: { message: string } }).restore.message).toMatch(/restored .* in place and verified it/);
    expect(await userObjects(db)).toEqual(['rel public.s', 'rel public.s_id_seq', 'rel public.t', 'rel public.t_id_seq']);
    expect(await db.query("SELECT v FROM t UNION ALL SELECT v FROM s ORDER BY 1")).toEqual([{ v: 'a' }, { v: 'b' }]);
  });

  it('collations, text search objects, conversions, statistics and large objects made after the snapshot are dropped, a large object changed since is put back (it was exit 12: cannot drop schema s1; and "verified" with the new large object left)', async () => {
    const { db, url } = await databaseOwnedByRoleWithoutCreatedb();
    const project = await makeProject({});
    const args = baseArgs(project, url);
    const role = new URL(url).username;
    await db.query(`SET ROLE ${role}; CREATE SCHEMA s1; CREATE TABLE s1.t (a int, b int); INSERT INTO s1.t VALUES (1, 2);
      SELECT lo_from_bytea(0, 'kept'::bytea) AS oid; CREATE TABLE s1.lobs (o oid); INSERT INTO s1.lobs SELECT max(oid) FROM pg_largeobject_metadata`);
    const kept = (await db.query<{ kept: number }>("SELECT o::int AS kept FROM s1.lobs"))[0]!.kept;
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    await db.query(`SET ROLE ${role}; CREATE COLLATION s1.coll_after FROM "C"; CREATE TEXT SEARCH CONFIGURATION s1.ts_after (COPY = simple);
      CREATE TEXT SEARCH DICTIONARY s1.dict_after (TEMPLATE = simple); CREATE STATISTICS s1.st_after ON a, b FROM s1.t;
      CREATE CONVERSION s1.conv_after FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8;
      SELECT lo_put(${kept}, 0, 'XXXX'::bytea); SELECT lo_from_bytea(0, 'newer'::bytea)`);
    const run = await belay([...args, '--json', 'restore', id, '--strategy', 'in-place', '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const { message } = (JSON.parse(run.stdout).result as { restore: { message: string } }).restore;
    expect(message).toMatch(/restored .* in place and verified it/);
    for (const gone of ['collation s1.coll_after', 'text search configuration s1.ts_after', 'text search dictionary s1.dict_after', 'statistics s1.st_after', 'conversion s1.conv_after', 'large object']) expect(message).toContain(gone);
    expect(
      await db.query(`SELECT (SELECT count(*)::int FROM pg_collation WHERE collname = 'coll_after') + (SELECT count(*)::int FROM pg_ts_config WHERE cfgname = 'ts_after')
                           + (SELECT count(*)::int FROM pg_ts_dict WHERE dictname = 'dict_after') + (SELECT count(*)::int FROM pg_statistic_ext WHERE stxname = 'st_after')
                           + (SELECT count(*)::int FROM pg_conversion WHERE conname = 'conv_after') AS left_behind,
                      (SELECT array_agg(oid::int) FROM pg_largeobject_metadata) AS large_objects, convert_from(lo_get(${kept}), 'UTF8') AS content`),
    ).toEqual([{ left_behind: 0, large_objects: [kept], content: 'kept' }]);
  });

  it('a run whose down fails, for a role without CREATEDB, restores in place around identity columns and ends 11', async () => {
    const { db, url } = await databaseOwnedByRoleWithoutCreatedb();
    const project = await makeProject({
      '0001_t.up.sql': "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);\nINSERT INTO t (v) VALUES ('a');",
      '0001_t.down.sql': 'DROP TABLE t;',
      '0002_more.up.sql': "CREATE TABLE u (id serial PRIMARY KEY);\nINSERT INTO t (v) VALUES ('b');",
      '0002_more.down.sql': 'SELECT 1 / 0;',
      '0003_fails.up.sql': 'SELECT 1 / 0;',
      '0003_fails.down.sql': 'SELECT 1;',
    });
    const args = baseArgs(project, url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stdout + run.stderr).toBe(11);
    expect((JSON.parse(run.stdout).result as { restore: { strategy: string } }).restore.strategy).toBe('in-place');
    expect(await userObjects(db)).toEqual(['rel public.t', 'rel public.t_id_seq']);
    expect(await db.query('SELECT v FROM t')).toEqual([{ v: 'a' }]);
  });

  it("a database's own snapshot matches it object for object, whatever the kinds and names", async () => {
    const db = await freshDatabase();
    await db.query(`
      CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
      CREATE TABLE s (id serial PRIMARY KEY, w text);
      CREATE TABLE b (id bigint GENERATED BY DEFAULT AS IDENTITY);
      CREATE SEQUENCE free_seq;
      CREATE SEQUENCE owned_seq OWNED BY s.w;
      CREATE TYPE floatrange AS RANGE (subtype = float8);
      CREATE TYPE mood AS ENUM ('a', 'b');
      CREATE TYPE pair AS (a int, b text);
      CREATE DOMAIN posint AS int CHECK (VALUE > 0);
      CREATE TABLE parted (id int, k int) PARTITION BY RANGE (k);
      CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
      CREATE TABLE parted_2 (id int, k int);
      ALTER TABLE parted ATTACH PARTITION parted_2 FOR VALUES FROM (10) TO (20);
      CREATE INDEX ON t (v);
      CREATE VIEW tv AS SELECT * FROM t;
      CREATE MATERIALIZED VIEW smv AS SELECT * FROM s;
      CREATE FUNCTION f(a posint, b mood) RETURNS int LANGUAGE sql AS 'SELECT 1';
      CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1';
      CREATE AGGREGATE total(int) (sfunc = int4pl, stype = int);
      CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
      COMMENT ON TABLE t IS 'a comment';
      GRANT SELECT ON t TO PUBLIC;
      ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC;
      CREATE SCHEMA other;
      CREATE TABLE other.x (id int GENERATED ALWAYS AS IDENTITY);
      CREATE SCHEMA "with space";
      CREATE TABLE "with space"."a table" (id serial);
      CREATE TABLE "we ird" ("a b" int);`);
    const file = join(await mkdtemp(join(tmpdir(), 'belay-toc-')), 'self.dump');
    execFileSync(join(cluster().binDir, 'pg_dump'), ['-h', cluster().socketDir, '-p', String(cluster().port), '-U', cluster().superuser, '-Fc', '-f', file, db.name]);
    const binary = { path: join(cluster().binDir, 'pg_restore'), major: 0, version: '' };
    const { entries: archive } = await archiveCatalog({ pgDump: binary, pgRestore: binary }, file, process.env);
    const client = new pg.Client({ connectionString: db.adminUrl });
    await client.connect();
    try {
      const { extra, missing } = await compareWithArchive(client, archive);
      expect({ extra: extra.map((e) => e.label), missing: missing.map((e) => e.label) }).toEqual({ extra: [], missing: [] });
    } finally {
      await client.end();
    }
  });

  it('serial and identity columns: their owned sequences are matched with the snapshot, not reported missing (exit 0, not 12)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_a.up.sql': 'CREATE TABLE a (id serial PRIMARY KEY, n int);\nCREATE TABLE b (id int GENERATED ALWAYS AS IDENTITY, n int);\nINSERT INTO a (n) VALUES (1), (2);',
      '0001_a.down.sql': 'DROP TABLE b; DROP TABLE a;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const backup = await belay([...args, '--json', 'backup']);
    const id = (JSON.parse(backup.stdout) as { result: { snapshot: { id: string } } }).result.snapshot.id;
    // after the snapshot: a serial column on a table it has, a table of its own with one
    await db.appQuery("ALTER TABLE a ADD COLUMN s serial; CREATE TABLE c (id serial); UPDATE a SET n = -n");
    const run = await belay([...args, '--json', '--yes', 'restore', id, '--strategy', 'in-place']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const { message } = JSON.parse(run.stdout).result as { message: string };
    expect(message).toMatch(/restored \S+ in place and verified it/);
    expect(message).toContain('1 object(s) created after the snapshot were dropped (table public.c)');
    expect(await userObjects(db)).toEqual(['rel public.a', 'rel public.a_id_seq', 'rel public.b', 'rel public.b_id_seq']);
    expect(await db.query('SELECT id, n FROM a ORDER BY id')).toEqual([{ id: 1, n: 1 }, { id: 2, n: 2 }]);
  });

  it("pg_restore's one commit is synchronous on a server whose commits are not: the restore is on disk before belay says it is", async () => {
    // the test cluster runs with synchronous_commit = off, as a server tuned for throughput may. A generated
    // column is computed as pg_restore loads the rows: it keeps the setting pg_restore's own session had
    const db = await freshDatabase();
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    await db.appQuery(`SET synchronous_commit = on;
      CREATE FUNCTION commit_mode() RETURNS text IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN RETURN current_setting('synchronous_commit'); END $$;
      CREATE TABLE t (id int PRIMARY KEY, mode text GENERATED ALWAYS AS (commit_mode()) STORED);
      INSERT INTO t (id) VALUES (1), (2)`);
    expect(await db.appQuery('SELECT current_setting($1) AS mode', ['synchronous_commit'])).toEqual([{ mode: 'off' }]);
    expect(await db.query('SELECT id, mode FROM t ORDER BY id')).toEqual([{ id: 1, mode: 'on' }, { id: 2, mode: 'on' }]);
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout) as { result: { snapshot: { id: string } } }).result.snapshot.id;
    await db.appQuery('DELETE FROM t WHERE id = 2');
    const run = await belay([...args, '--json', '--yes', 'restore', id, '--strategy', 'in-place']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect((JSON.parse(run.stdout).result as { message: string }).message).toMatch(/restored \S+ in place and verified it/);
    expect(await db.query('SELECT id, mode FROM t ORDER BY id')).toEqual([{ id: 1, mode: 'on' }, { id: 2, mode: 'on' }]);
  });

  it("a snapshot from before belay's schema function existed restores in place: belay's schema is not dropped with the rest (it was exit 12, the live tables dropped, belay.migrations left saying 0001)", async () => {
    const { db, url } = await databaseOwnedByRoleWithoutCreatedb();
    const project = await makeProject({
      '0001_accounts.up.sql': "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);\nINSERT INTO accounts SELECT g, 'acct ' || g FROM generate_series(1, 100) g;",
      '0001_accounts.down.sql': 'DROP TABLE accounts;',
    });
    const args = baseArgs(project, url);
    // the first run's snapshot is taken before its first revision makes belay's schema function
    const up = await belay([...args, '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full']);
    expect(up.code, up.stdout + up.stderr).toBe(0);
    const first = (JSON.parse(up.stdout).result as { snapshot: { id: string } }).snapshot.id;
    expect(archiveList(join(project.backups, `${first}.dump`))).not.toMatch(/FUNCTION belay schema_changes_/);
    expect(await db.query("SELECT count(*)::int AS n FROM pg_proc WHERE pronamespace = 'belay'::regnamespace AND proname LIKE 'schema\\_changes\\_%'")).toEqual([{ n: 1 }]);
    const run = await belay([...args, '--json', 'restore', first, '--strategy', 'in-place', '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(await userObjects(db)).toEqual([]);
    expect(await db.query('SELECT name FROM belay.migrations')).toEqual([]);
    expect(await readdir(tmpdir()).then((names) => names.filter((name) => name.startsWith('belay-restore-')))).toEqual([]);
  });

  it('an in-place restore whose pg_restore fails after the newer objects were dropped names the snapshot that keeps them and how to put them back (it was exit 12 naming only the snapshot it could not restore)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_t.up.sql': "CREATE TABLE t (id int PRIMARY KEY);\nINSERT INTO t SELECT generate_series(1, 10);\nCREATE FUNCTION refuse() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'not today'; END $$;",
      '0001_t.down.sql': 'DROP FUNCTION refuse(); DROP TABLE t;',
      '0002_extra.up.sql': 'CREATE TABLE extra (id int PRIMARY KEY);\nINSERT INTO extra SELECT generate_series(1, 25);',
      '0002_extra.down.sql': 'DROP TABLE extra;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const snapshot = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    // an event trigger made since on a function the snapshot has: pg_restore --clean cannot drop that function, after
    // belay dropped what the snapshot lacks (an event trigger is not among the objects it compares)
    await db.query("CREATE EVENT TRIGGER refuse ON ddl_command_start WHEN TAG IN ('CREATE TYPE') EXECUTE FUNCTION refuse()");
    const run = await belay([...args, '--json', 'restore', snapshot, '--strategy', 'in-place', '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(12);
    const said = JSON.parse(run.stdout) as { message: string; next: string; result: { restore: { strategy: string; quarantineSnapshot: string | null } } };
    const kept = said.result.restore.quarantineSnapshot;
    expect(kept).toMatch(/^\d{8}T\d{6}Z-/);
    expect(said.result.restore.strategy).toBe('in-place');
    expect(said.message).toMatch(/in place failed: .*cannot drop function public\.refuse\(\) because other objects depend on it.*nothing of it was restored \(pg_restore runs as one transaction\)/);
    expect(said.message).toContain(`1 object(s) created after the snapshot were dropped (table public.extra), kept in snapshot ${kept}`);
    expect(said.next).toContain(`belay restore ${kept} --strategy in-place`);
    expect(await db.query("SELECT to_regclass('extra') IS NULL AS gone, (SELECT count(*)::int FROM t) AS t")).toEqual([{ gone: true, t: 10 }]);
    // what the next steps name outlives a prune of everything but the newest (it deleted the kept copy), also after
    // a later run that ended otherwise (a backup: it deleted them then)
    expect((await belay([...args, 'backup'])).code).toBe(0);
    const prune = await belay([...args, '--json', 'backups', 'prune', '--keep', '0', '--yes']);
    expect(prune.code, prune.stdout + prune.stderr).toBe(0);
    expect(prune.stdout).toMatch(/ended needing manual action, and no snapshot was restored since/);
    for (const id of [kept, snapshot]) expect(await readdir(project.backups)).toContain(`${id}.dump`);
    // the kept snapshot puts back what was dropped
    await db.query('DROP EVENT TRIGGER refuse');
    // (as a superuser: the kept state has the event trigger, which only a superuser may make)
    const back = await belay([...baseArgs(project, db.adminUrl), 'restore', kept!, '--strategy', 'in-place', '--yes']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(await db.query('SELECT count(*)::int AS n FROM extra')).toEqual([{ n: 25 }]);
  });

  it("a database with partitioned tables (keys, unique constraints, indexes, foreign keys, a default partition, sub-partitions) restores in place (it was exit 12: cannot drop inherited constraint)", async () => {
    const { db, url } = await databaseOwnedByRoleWithoutCreatedb();
    const project = await makeProject({});
    const args = baseArgs(project, url);
    const role = `SET ROLE ${new URL(url).username};`;
    await db.query(`${role}
      CREATE TABLE ev (id int, at date, v text, PRIMARY KEY (id, at), UNIQUE (v, at, id)) PARTITION BY RANGE (at);
      CREATE TABLE ev_d PARTITION OF ev DEFAULT;
      CREATE TABLE ev_2020 PARTITION OF ev FOR VALUES FROM ('2020-01-01') TO ('2021-01-01') PARTITION BY LIST (id);
      CREATE TABLE ev_2020_low PARTITION OF ev_2020 FOR VALUES IN (1, 2);
      CREATE TABLE ev_2020_rest PARTITION OF ev_2020 DEFAULT;
      CREATE INDEX ev_v ON ev (v);
      CREATE TABLE ref (id int PRIMARY KEY, ev_id int, ev_at date, FOREIGN KEY (ev_id, ev_at) REFERENCES ev);
      CREATE TABLE pref (id int, ref_id int REFERENCES ref, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
      CREATE TABLE pref_d PARTITION OF pref DEFAULT;
      INSERT INTO ev VALUES (1, '2020-05-01', 'a'), (3, '2020-06-01', 'b'), (5, '2022-01-01', 'c');
      INSERT INTO ref VALUES (1, 1, '2020-05-01');
      INSERT INTO pref VALUES (1, 1, '2020-01-01');`);
    const shape = (): Promise<unknown[]> =>
      db.query(`SELECT c.relname AS rel, (SELECT p.relname FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent WHERE h.inhrelid = c.oid) AS parent,
                       (SELECT string_agg(i.relname || CASE WHEN x.indisvalid THEN '' ELSE ' INVALID' END, ', ' ORDER BY i.relname) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = c.oid) AS indexes,
                       (SELECT string_agg(conname, ', ' ORDER BY conname) FROM pg_constraint WHERE conrelid = c.oid) AS constraints
                  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1`);
    const before = await shape();
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    await db.query(`${role} DELETE FROM pref; DELETE FROM ref; UPDATE ev SET v = 'x'; INSERT INTO ev VALUES (2, '2020-02-01', 'new');
      CREATE TABLE ev_2030 PARTITION OF ev FOR VALUES FROM ('2030-01-01') TO ('2031-01-01')`);
    const run = await belay([...args, '--json', 'restore', id, '--strategy', 'in-place', '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const result = JSON.parse(run.stdout).result as { journalFile: string; restore: { message: string } };
    expect(result.restore.message).toMatch(/restored \S+ in place and verified it; .*1 object\(s\) created after the snapshot were dropped \(table public\.ev_2030\)/);
    expect(await shape()).toEqual(before);
    expect(await db.query("SELECT id, at::text, v FROM ev ORDER BY id")).toEqual([
      { id: 1, at: '2020-05-01', v: 'a' },
      { id: 3, at: '2020-06-01', v: 'b' },
      { id: 5, at: '2022-01-01', v: 'c' },
    ]);
    expect(await db.query('SELECT (SELECT count(*)::int FROM ref) AS ref, (SELECT count(*)::int FROM pref_d) AS pref')).toEqual([{ ref: 1, pref: 1 }]);
    const journal = (await readFile(result.journalFile, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(journal.find((line) => line.step === 'restore' && line.event === 'end')).toMatchObject({ outcome: 'ok' });
    expect(journal.at(-1)).toMatchObject({ type: 'outcome', status: 'ok', exitCode: 0 });
  });

  it('an in-place restore that could not keep a copy of the database first touched nothing: exit 4 with what to do (it was exit 12)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    await db.appQuery("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')");
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    // a table made since that the role may not read: its dump of the database fails
    await db.appQuery("UPDATE t SET v = 'changed'; CREATE TABLE later (id int)");
    await db.query('CREATE TABLE hidden (id int); INSERT INTO hidden VALUES (7)');
    const run = await belay([...args, '--json', 'restore', id, '--strategy', 'in-place', '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(4);
    const said = JSON.parse(run.stdout) as { message: string; next: string; journal: string };
    expect(said.message).toMatch(/could not keep a copy of \S+ before restoring over it, so \S+ was not touched: .*permission denied/);
    expect(said.next).toContain(`belay restore ${id} --strategy in-place`);
    expect(await db.query("SELECT v, to_regclass('later') IS NOT NULL AS later, (SELECT count(*)::int FROM hidden) AS hidden FROM t")).toEqual([{ v: 'changed', later: true, hidden: 1 }]);
    const journal = (await readFile(said.journal, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(journal.find((line) => line.step === 'restore' && line.event === 'end')).toMatchObject({ outcome: 'failed' });
    expect(journal.at(-1)).toMatchObject({ type: 'outcome', status: 'refused', exitCode: 4 });
  });
  it('an in-place restore stopped by a signal inside pg_restore changed nothing: its text names the copy it kept first and what to do with it (it said only that nothing changed)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    // rows enough for pg_restore's COPY to run a while
    await db.appQuery("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000000) g");
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    await db.appQuery("UPDATE t SET v = 'changed' WHERE id = 1");
    const before = new Set(await readdir(project.backups));
    const run = startBelay([...args, 'restore', id, '--strategy', 'in-place', '--yes']);
    await pollUntil(
      async () => (await db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'belay restore %' AND query LIKE 'COPY %'")).length > 0,
      "pg_restore's COPY",
      20_000,
    );
    run.child.kill('SIGINT');
    const done = await run.done;
    const kept = (await readdir(project.backups)).filter((f) => !before.has(f) && f.endsWith('.manifest.json')).map((f) => f.replace(/\.manifest\.json$/, ''));
    expect(kept).toHaveLength(1);
    expect(await readdir(project.backups)).toContain(`${kept[0]}.dump`);
    const text = done.stdout + done.stderr;
    expect(done.code, text).toBe(4);
    expect(text).toMatch(/the restore was interrupted by a signal; \S+ was not changed by it/);
    expect(text).toContain(`kept as snapshot ${kept[0]}`);
    expect(text).toMatch(new RegExp(`next: .*${kept[0]}`));
    // not changed indeed
    expect(await db.query("SELECT v FROM t WHERE id = 1")).toEqual([{ v: 'changed' }]);
  }, 180_000);
  it('the copy an in-place restore keeps records the revision the database was at and the restore run that took it; restoring it lands there (it said revision null: db@∅, toRevision null)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_base.up.sql': 'CREATE TABLE t (id int);',
      '0001_base.down.sql': 'DROP TABLE t;',
      '0002_w.up.sql': 'CREATE TABLE w (id int);\nINSERT INTO w SELECT generate_series(1, 10);',
      '0002_w.down.sql': 'DROP TABLE w;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001_base'])).code).toBe(0);
    const atBase = (JSON.parse((await belay([...args, '--json', 'backup'])).stdout) as { result: { snapshot: { id: string } } }).result.snapshot.id;
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const back = await belay([...args, '--json', 'restore', atBase, '--strategy', 'in-place']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    const restored = JSON.parse(back.stdout).result as { runId: string; restore: { quarantineSnapshot: string } };
    const kept = restored.restore.quarantineSnapshot;
    const manifest = JSON.parse(await readFile(join(project.backups, `${kept}.manifest.json`), 'utf8')) as { revision: string | null; runId: string | null; quarantine?: boolean };
    expect(manifest).toMatchObject({ revision: '0002_w', runId: restored.runId, quarantine: true });
    expect((await belay([...args, 'backups', 'list'])).stdout).toMatch(new RegExp(`${kept} .* ${db.name}@0002_w .*\\(quarantine`));
    expect((JSON.parse((await belay([...args, '--json', 'status'])).stdout) as { result: { current: string } }).result.current).toBe('0001_base');

    // the kept copy put back: the database at 0002_w again, and every record says so
    const again = await belay([...args, '--json', 'restore', kept, '--strategy', 'in-place']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const result = JSON.parse(again.stdout) as { message: string; result: { runId: string; fromRevision: string | null; toRevision: string | null } };
    expect(result.result).toMatchObject({ fromRevision: '0001_base', toRevision: '0002_w' });
    // it has no fingerprint: its data is not said to be verified
    expect(result.message).toMatch(new RegExp(`its data not compared: snapshot ${kept} has no fingerprint`));
    expect(await db.query('SELECT count(*)::int AS n FROM w')).toEqual([{ n: 10 }]);
    expect((await belay([...args, 'history'])).stdout).toMatch(new RegExp(`${result.result.runId} .* restore .* 0001_base → 0002_w `));
    expect((await belay([...args, 'history', result.result.runId])).stdout).toContain('  0001_base → 0002_w');
    expect((JSON.parse((await belay([...args, '--json', 'status'])).stdout) as { result: { current: string } }).result.current).toBe('0002_w');
  });
});
