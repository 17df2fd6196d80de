import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult } from './support/cli.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';
import { schemaDump } from './support/schema.js';

/** Up to 0001, `up` (the rest), then rollback --to 0001: exit 0, "data verified", the rows `digest` reads as at 0001. */
async function rollsBackVerified(args: string[], db: TestDatabase, digest: string, up: string[] = ['migrate', 'up']): Promise<void> {
  expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
  const before = await db.query(digest);
  const applied = await belay([...args, ...up]);
  expect(applied.code, applied.stdout + applied.stderr).toBe(0);
  const back = await belay([...args, '--yes', 'rollback', '--to', '0001']);
  expect(back.code, back.stdout + back.stderr).toBe(0);
  expect(back.stdout).toContain('data verified');
  expect(await db.query(digest)).toEqual(before);
}

/** Every revision up, then rollback --to 0001 with a down that changed `table`'s rows: exit 11, named. */
async function rollbackCaught(args: string[], table: string, context = ''): Promise<void> {
  expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
  const caught = await belay([...args, '--yes', 'rollback', '--to', '0001']);
  expect(caught.code, context + caught.stdout + caught.stderr).toBe(11);
  expect(caught.stderr).toContain(`the content of ${table} changed`);
}

const REVISIONS = {
  '0001_orders.up.sql': "CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL);\nINSERT INTO orders SELECT g, g * 1.25 FROM generate_series(1, 1000) g;",
  '0001_orders.down.sql': 'DROP TABLE orders;',
  '0002_customers.up.sql': 'CREATE TABLE customers (id int PRIMARY KEY, name text);\nALTER TABLE orders ADD COLUMN customer_id int;',
  '0002_customers.down.sql': 'ALTER TABLE orders DROP COLUMN customer_id;\nDROP TABLE customers;',
  '0003_orders_index.up.sql': 'CREATE INDEX orders_total ON orders (total);\nALTER TABLE orders ADD CONSTRAINT total_positive CHECK (total > 0);',
  '0003_orders_index.down.sql': 'ALTER TABLE orders DROP CONSTRAINT total_positive;\nDROP INDEX orders_total;',
  '0004_notes.up.sql': 'CREATE TABLE notes (id int);',
  '0004_notes.down.sql': 'DROP TABLE notes;',
};

describe('rollback --to', () => {
  it('after migrate up of three revisions, rolling back to the first gives its schema back and leaves untouched data identical', async () => {
    const db = await freshDatabase();
    const project = await makeProject(REVISIONS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const schemaAtFirst = schemaDump(db.name);
    await db.appQuery('CREATE TABLE untouched (id int PRIMARY KEY, v text); INSERT INTO untouched SELECT g, md5(g::text) FROM generate_series(1, 300) g');
    const schemaWithUntouched = schemaDump(db.name);
    expect((await belay([...args, 'migrate', 'up', '--to', '0004'])).code).toBe(0);
    const digest = "SELECT count(*)::int AS n, md5(string_agg(t::text, ',' ORDER BY id)) AS h FROM %s t";
    const untouchedBefore = await db.query(digest.replace('%s', 'untouched'));
    const ordersBefore = await db.query("SELECT count(*)::int AS n, md5(string_agg(id || ':' || total, ',' ORDER BY id)) AS h FROM orders");
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(0);
    const result = jsonResult(run) as { revisions: Array<{ name: string; status: string }>; snapshot: { id: string } };
    expect(result.revisions.map((r) => `${r.name}:${r.status}`)).toEqual(['0004_notes:reverted', '0003_orders_index:reverted', '0002_customers:reverted']);
    expect(result.snapshot.id).toBeTruthy();
    expect(schemaDump(db.name)).toBe(schemaWithUntouched);
    expect(schemaWithUntouched).not.toBe(schemaAtFirst);
    expect(await db.query(digest.replace('%s', 'untouched'))).toEqual(untouchedBefore);
    expect(await db.query("SELECT count(*)::int AS n, md5(string_agg(id || ':' || total, ',' ORDER BY id)) AS h FROM orders")).toEqual(ordersBefore);
  });

  it('--restore-from a tampered snapshot is refused (exit 4) and changes nothing; an untampered one is restored', async () => {
    const db = await freshDatabase();
    const project = await makeProject(REVISIONS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0002'])).code).toBe(0);
    const snapshot = (jsonResult(await belay([...args, '--json', 'backup'])) as { snapshot: { id: string } }).snapshot.id;
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const file = join(project.backups, `${snapshot}.dump`);
    const original = Buffer.alloc(6);
    const handle = await open(file, 'r+');
    await handle.read(original, 0, 6, 300);
    await handle.write(Buffer.from('XXXXXX'), 0, 6, 300);
    const refused = await belay([...args, '--yes', 'rollback', '--to', '0002', '--restore-from', snapshot]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/failed verification: .*sha256/);
    expect((await db.query('SELECT max(name) AS m FROM belay.migrations'))[0]?.m).toBe('0004_notes');
    await handle.write(original, 0, 6, 300);
    await handle.close();
    const restored = await belay([...args, '--json', '--yes', 'rollback', '--to', '0002', '--restore-from', snapshot]);
    expect(restored.code, restored.stderr).toBe(0);
    expect((await db.query('SELECT max(name) AS m FROM belay.migrations'))[0]?.m).toBe('0002_customers');
    expect(await db.query("SELECT to_regclass('notes') AS t")).toEqual([{ t: null }]);
  });

  it('--restore-from a snapshot taken at another revision than --to is refused (exit 4) and changes nothing, below or above it (it restored it and said ok, landing elsewhere)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(REVISIONS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0002'])).code).toBe(0);
    const atSecond = (jsonResult(await belay([...args, '--json', 'backup'])) as { snapshot: { id: string } }).snapshot.id;
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const atFourth = (jsonResult(await belay([...args, '--json', 'backup'])) as { snapshot: { id: string } }).snapshot.id;
    const below = await belay([...args, '--yes', 'rollback', '--to', '0003', '--restore-from', atSecond]);
    expect(below.code, below.stderr).toBe(4);
    expect(below.stderr).toContain(`snapshot ${atSecond} was taken at 0002_customers, not at 0003_orders_index (--to)`);
    expect((await db.query('SELECT max(name) AS m FROM belay.migrations'))[0]?.m).toBe('0004_notes');
    expect((await belay([...args, '--yes', 'rollback', '--to', '0002'])).code).toBe(0);
    const above = await belay([...args, '--yes', 'rollback', '--to', '0001', '--restore-from', atFourth]);
    expect(above.code, above.stderr).toBe(4);
    expect(above.stderr).toContain(`snapshot ${atFourth} was taken at 0004_notes, not at 0001_orders (--to)`);
    expect((await db.query('SELECT max(name) AS m FROM belay.migrations'))[0]?.m).toBe('0002_customers');
  });

  it('a lossy down under --no-backup ends 12 telling to leave out --no-backup next time (it said to run with --with-backup, which rollback refuses, and called the run interrupted)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...REVISIONS, '0004_notes.down.sql': 'DROP TABLE notes;\nDELETE FROM orders WHERE id > 990;' });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0003', '--no-backup']);
    expect(run.code, run.stderr).toBe(12);
    const { next } = JSON.parse(run.stdout) as { next: string };
    expect(next).toContain('Next time leave out --no-backup.');
    expect(next).not.toMatch(/--with-backup|interrupted run/);
    expect((await belay([...args, '--yes', 'rollback', '--to', '0003', '--with-backup'])).code).toBe(2);
  });

  it('irreversible revisions stop the rollback before anything changes and name the snapshot to restore instead', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...REVISIONS, '0005_irreversible.up.sql': 'DELETE FROM orders WHERE id > 990;' });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0002'])).code).toBe(0);
    const snapshot = (jsonResult(await belay([...args, '--json', 'backup'])) as { snapshot: { id: string } }).snapshot.id;
    expect((await belay([...args, 'migrate', 'up', '--allow-irreversible'])).code).toBe(0);
    const run = await belay([...args, '--yes', 'rollback', '--to', '0002']);
    expect(run.code).toBe(4);
    expect(run.stderr).toContain('revisions without a down stand between 0005_irreversible and 0002_customers: 0005_irreversible');
    expect(run.stderr).toContain(`--restore-from ${snapshot}`);
    expect((await db.query('SELECT count(*)::int AS n FROM orders'))[0]?.n).toBe(990);
  });

  it('compares per column only the tables whose columns the downs change: a rename and a re-added column verify, a value a down changes is caught', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_tables.up.sql':
        "CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL, note text);\nINSERT INTO orders SELECT g, g * 1.25, 'n' || g FROM generate_series(1, 500) g;\n" +
        "CREATE TABLE customers (id int PRIMARY KEY, name text, legacy text);\nINSERT INTO customers SELECT g, 'c' || g, 'l' || g FROM generate_series(1, 200) g;\n" +
        'CREATE TABLE other (id int PRIMARY KEY, v text);\nINSERT INTO other SELECT g, md5(g::text) FROM generate_series(1, 100) g;',
      '0001_tables.down.sql': 'DROP TABLE orders, customers, other;',
      '0002_reshape.up.sql': 'ALTER TABLE orders RENAME COLUMN note TO remark;\nALTER TABLE customers DROP COLUMN legacy;',
      '0002_reshape.down.sql': 'ALTER TABLE orders RENAME COLUMN remark TO note;\nALTER TABLE customers ADD COLUMN legacy text;',
      '0003_flag.up.sql': 'ALTER TABLE orders ADD COLUMN flag int;',
      '0003_flag.down.sql': 'ALTER TABLE orders DROP COLUMN flag;\nUPDATE orders SET total = total + 1 WHERE id = 7;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0002'])).code).toBe(0);
    const backup = jsonResult(await belay([...args, '--json', 'backup'])) as { snapshot: { id: string } };
    // a backup with no down pending keeps the row hash alone: what a restore verifies
    const manifest = JSON.parse(await readFile(join(project.backups, `${backup.snapshot.id}.manifest.json`), 'utf8')) as { fingerprint: { perColumn: boolean; tables: Record<string, { columns: Record<string, { hash?: string }> }> } };
    expect(manifest.fingerprint.perColumn).toBe(false);
    expect(Object.values(manifest.fingerprint.tables).flatMap((t) => Object.values(t.columns)).some((c) => c.hash !== undefined)).toBe(false);

    const back = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain('data verified');
    const journal = (await readFile((jsonResult(back) as { journalFile: string }).journalFile, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { step?: string; event?: string; detail?: { fingerprint?: { tables: Record<string, { columns: Record<string, { hash?: string }> }> } } });
    const taken = journal.find((line) => line.step === 'fingerprint' && line.event === 'end')!.detail!.fingerprint!;
    const hashed = Object.entries(taken.tables).filter(([, t]) => Object.values(t.columns).some((c) => c.hash !== undefined)).map(([key]) => key);
    expect(hashed.sort()).toEqual(['public.customers', 'public.orders']);

    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const caught = await belay([...args, '--json', '--yes', 'rollback', '--to', '0002']);
    expect(caught.code, caught.stderr).toBe(11);
    expect(caught.stdout).toContain('values in public.orders.total changed');
    expect(await db.query('SELECT total::text AS t FROM orders WHERE id = 7')).toEqual([{ t: '8.75' }]);
  });
  it('a down that names its tables through the search_path it sets drops a column as planned: exit 0, data verified, nothing restored', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_app.up.sql': "CREATE SCHEMA app;\nCREATE TABLE app.users (id int PRIMARY KEY, name text NOT NULL);\nINSERT INTO app.users SELECT g, 'user ' || g FROM generate_series(1, 100) g;",
      '0001_app.down.sql': 'DROP SCHEMA app CASCADE;',
      '0002_nick.up.sql': 'SET search_path = app;\nALTER TABLE users ADD COLUMN nick text;\nUPDATE users SET nick = lower(name);',
      '0002_nick.down.sql': 'SET search_path = app;\nALTER TABLE users DROP COLUMN nick;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const plan = await belay([...args, 'plan', '--to', '0001']);
    expect(plan.stdout).toContain('app.users.nick: 100 non-null value(s) in 100 row(s)');
    const back = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(back.code, back.stdout).toBe(0);
    expect(back.stdout).toContain('data verified');
    expect(await db.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_schema = 'app' AND table_name = 'users'")).toEqual([{ n: 2 }]);
    expect(await db.query('SELECT count(*)::int AS n FROM app.users')).toEqual([{ n: 100 }]);
  });

  it('a down that changes a column type back verifies by value (varchar widened, text to jsonb), and a snapshot of xml with a declaration restores verified', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_users.up.sql':
        "CREATE TABLE users (id int PRIMARY KEY, username varchar(64) NOT NULL, props varchar, doc xml);\n" +
        "INSERT INTO users SELECT g, 'user ' || g, '{\"theme\": \"dark\", \"n\": ' || g || '}', ('<?xml version=\"1.0\" encoding=\"UTF-8\"?><p>' || g || '</p>')::xml FROM generate_series(1, 200) g;",
      '0001_users.down.sql': 'DROP TABLE users;',
      '0002_widen.up.sql': 'ALTER TABLE users ALTER COLUMN username TYPE varchar(128);\nALTER TABLE users ALTER COLUMN props TYPE jsonb USING props::jsonb;',
      '0002_widen.down.sql': 'ALTER TABLE users ALTER COLUMN props TYPE varchar USING props::text;\nALTER TABLE users ALTER COLUMN username TYPE varchar(64);',
    });
    const args = baseArgs(project, db.url);
    const up = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(up.code, up.stdout + up.stderr).toBe(0);
    const back = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(back.stdout).toContain('data verified');
    expect(await db.query("SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname IN ('username', 'props') ORDER BY attnum")).toEqual([{ t: 'character varying(64)' }, { t: 'character varying' }]);

    const backup = jsonResult(await belay([...args, '--json', 'backup'])) as { snapshot: { id: string } };
    const restored = await belay([...args, '--json', '--yes', 'restore', backup.snapshot.id]);
    expect(restored.code, restored.stdout + restored.stderr).toBe(0);
    expect(await db.query('SELECT count(*)::int AS n FROM users')).toEqual([{ n: 200 }]);
  });

  it('a down that turns a column back into text and drops its enum, domain or citext verifies by value (it failed to cast to the dropped type: exit 11, "changed type", restored); a value the down changed is still caught', async () => {
    const revisions = (down: string): Record<string, string> => ({
      '0001_t.up.sql': "CREATE TABLE t (id int PRIMARY KEY, st text, email text, nick text);\nINSERT INTO t SELECT g, (ARRAY['a','b'])[1 + g % 2], 'user' || g || '@example.com', 'Nick' || g FROM generate_series(1, 2000) g;",
      '0001_t.down.sql': 'DROP TABLE t;',
      '0002_types.up.sql':
        "CREATE TYPE st_enum AS ENUM ('a', 'b');\nALTER TABLE t ALTER COLUMN st TYPE st_enum USING st::st_enum;\n" +
        "CREATE DOMAIN d_email AS text CHECK (VALUE LIKE '%@%');\nALTER TABLE t ALTER COLUMN email TYPE d_email;\n" +
        'CREATE EXTENSION citext;\nALTER TABLE t ALTER COLUMN nick TYPE citext;',
      '0002_types.down.sql': `ALTER TABLE t ALTER COLUMN st TYPE text USING ${down};\nDROP TYPE st_enum;\nALTER TABLE t ALTER COLUMN email TYPE text;\nDROP DOMAIN d_email;\nALTER TABLE t ALTER COLUMN nick TYPE text;\nDROP EXTENSION citext;`,
    });
    const digest = "SELECT count(*)::int AS n, md5(string_agg(id || ':' || st || ':' || email || ':' || nick, ',' ORDER BY id)) AS h FROM t";
    const db = await freshDatabase();
    const args = baseArgs(await makeProject(revisions('st::text')), db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const before = await db.query(digest);
    const back = await belay([...args, '--yes', 'rollback', '--to', '0001']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(back.stdout).toContain('data verified');
    expect(await db.query(digest)).toEqual(before);
    expect(await db.query('SELECT count(*)::int AS n FROM pg_database WHERE starts_with(datname, $1)', [`${db.name}_quarantine`])).toEqual([{ n: 0 }]);

    const damaged = await freshDatabase();
    const damagedArgs = baseArgs(await makeProject(revisions('upper(st::text)')), damaged.url);
    expect((await belay([...damagedArgs, 'migrate', 'up'])).code).toBe(0);
    const caught = await belay([...damagedArgs, '--yes', 'rollback', '--to', '0001']);
    expect(caught.code, caught.stdout + caught.stderr).toBe(11);
    expect(caught.stderr).toContain('the content of public.t changed');
  });

  it('a down that turns timestamp back into timestamptz, or timestamptz back into timestamp, verifies by value on a database whose TimeZone is not UTC (the comparison cast in UTC: exit 11, restored)', async () => {
    const db = await freshDatabase();
    await db.query(`ALTER DATABASE ${db.name} SET timezone = 'America/New_York'`);
    const args = baseArgs(
      await makeProject({
        '0001_t.up.sql': "CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL, local timestamp NOT NULL);\nINSERT INTO t SELECT g, timestamptz '2026-03-01 00:00+00' + g * interval '37 minutes', timestamp '2026-01-01 00:00' + g * interval '37 minutes' FROM generate_series(1, 2000) g;",
        '0001_t.down.sql': 'DROP TABLE t;',
        '0002_zones.up.sql': 'ALTER TABLE t ALTER COLUMN at TYPE timestamp;\nALTER TABLE t ALTER COLUMN local TYPE timestamptz;',
        '0002_zones.down.sql': 'ALTER TABLE t ALTER COLUMN at TYPE timestamptz;\nALTER TABLE t ALTER COLUMN local TYPE timestamp;',
      }),
      db.url,
    );
    // wall clock times before March's change of offset: each is an instant in New York and back
    const digest = "SELECT count(*)::int AS n, md5(string_agg(id || ':' || extract(epoch FROM at) || ':' || local, ',' ORDER BY id)) AS h FROM t";
    await rollsBackVerified(args, db, digest, ['migrate', 'up', '--to', '0002']);
  });

  it("the same round trip written AT TIME ZONE 'UTC' (Django's, Alembic's) verifies too on a New York database (the comparison cast in the session's zone: exit 11, restored); a down that shifts the values by an hour is still caught", async () => {
    const revisions = (shift: string): Record<string, string> => ({
      '0001_ev.up.sql': "CREATE TABLE ev (id int PRIMARY KEY, at timestamptz NOT NULL);\nINSERT INTO ev SELECT g, timestamptz '2024-01-01 00:00+00' + g * interval '7 minutes' FROM generate_series(1, 2000) g;",
      '0001_ev.down.sql': 'DROP TABLE ev;',
      '0002_naive.up.sql': "ALTER TABLE ev ALTER COLUMN at TYPE timestamp USING at AT TIME ZONE 'UTC';",
      '0002_naive.down.sql': `ALTER TABLE ev ALTER COLUMN at TYPE timestamptz USING (at${shift}) AT TIME ZONE 'UTC';`,
    });
    const digest = "SELECT count(*)::int AS n, md5(string_agg(id || ':' || extract(epoch FROM at), ',' ORDER BY id)) AS h FROM ev";
    const db = await freshDatabase();
    await db.query(`ALTER DATABASE ${db.name} SET timezone = 'America/New_York'`);
    await rollsBackVerified(baseArgs(await makeProject(revisions('')), db.url), db, digest);

    const shifted = await freshDatabase();
    await shifted.query(`ALTER DATABASE ${shifted.name} SET timezone = 'America/New_York'`);
    await rollbackCaught(baseArgs(await makeProject(revisions(" + interval '1 hour'")), shifted.url), 'public.ev');
  });

  it('timestamptz turned into text and back verifies on a Berlin database (the comparison wrote its text in UTC, the up in Berlin: exit 11, restored); a down that shifts the values by an hour is still caught', async () => {
    const revisions = (shift: string): Record<string, string> => ({
      '0001_ev.up.sql':
        "CREATE TABLE ev (id int PRIMARY KEY, at timestamptz);\nINSERT INTO ev SELECT g, timestamptz '2024-01-01 00:00:00.25+00' + g * interval '7 hours 3 minutes' FROM generate_series(1, 2000) g;\n" +
        "INSERT INTO ev VALUES (0, NULL), (-1, 'infinity'), (-2, '-infinity'), (-3, '1890-06-01 12:00+00'), (-4, '0044-03-15 12:00+00 BC');",
      '0001_ev.down.sql': 'DROP TABLE ev;',
      '0002_text.up.sql': 'ALTER TABLE ev ALTER COLUMN at TYPE text;',
      '0002_text.down.sql': `ALTER TABLE ev ALTER COLUMN at TYPE timestamptz USING at::timestamptz${shift};`,
    });
    const digest = "SELECT count(*)::int AS n, md5(string_agg(id || ':' || coalesce(extract(epoch FROM at)::text, 'null'), ',' ORDER BY id)) AS h FROM ev";
    const db = await freshDatabase();
    await db.query(`ALTER DATABASE ${db.name} SET timezone = 'Europe/Berlin'`);
    await rollsBackVerified(baseArgs(await makeProject(revisions('')), db.url), db, digest);

    const shifted = await freshDatabase();
    await shifted.query(`ALTER DATABASE ${shifted.name} SET timezone = 'Europe/Berlin'`);
    await rollbackCaught(baseArgs(await makeProject(revisions(" + interval '1 hour'")), shifted.url), 'public.ev');
  });

  it("a down that renames an enum's label back verifies by value (the values are the same OIDs: it was 'the content changed', exit 11); a value the down changed is still caught", async () => {
    const revisions = (down: string): Record<string, string> => ({
      '0001_t.up.sql': "CREATE TYPE st_enum AS ENUM ('a', 'b');\nCREATE TABLE t (id int PRIMARY KEY, st st_enum);\nINSERT INTO t SELECT g, (ARRAY['a','b'])[1 + g % 2]::st_enum FROM generate_series(1, 2000) g;",
      '0001_t.down.sql': 'DROP TABLE t;\nDROP TYPE st_enum;',
      '0002_rename.up.sql': "ALTER TYPE st_enum RENAME VALUE 'b' TO 'bee';",
      '0002_rename.down.sql': down,
    });
    const digest = "SELECT count(*)::int AS n, md5(string_agg(id || ':' || st, ',' ORDER BY id)) AS h FROM t";
    const db = await freshDatabase();
    await rollsBackVerified(baseArgs(await makeProject(revisions("ALTER TYPE st_enum RENAME VALUE 'bee' TO 'b';")), db.url), db, digest);

    const damaged = await freshDatabase();
    await rollbackCaught(baseArgs(await makeProject(revisions("ALTER TYPE st_enum RENAME VALUE 'bee' TO 'b';\nUPDATE t SET st = 'a' WHERE id = 3;")), damaged.url), 'public.t');
  });

  it('a down that renames a column back and changes its values is caught: exit 11, restored (it compared the columns whose names had not changed: exit 0, "data verified"); one that only renames it back verifies', async () => {
    const revisions = (down: string): Record<string, string> => ({
      '0001_t.up.sql': "CREATE TABLE t (id int PRIMARY KEY, x text, y text);\nINSERT INTO t SELECT g, 'x' || g, 'y' || g FROM generate_series(1, 100) g;",
      '0001_t.down.sql': 'DROP TABLE t;',
      '0002_rename.up.sql': 'ALTER TABLE t RENAME COLUMN x TO a;\nALTER TABLE t ADD COLUMN z int;',
      '0002_rename.down.sql': `ALTER TABLE t DROP COLUMN z;\nALTER TABLE t RENAME COLUMN a TO x;\n${down}`,
    });
    const db = await freshDatabase();
    await rollsBackVerified(baseArgs(await makeProject(revisions('')), db.url), db, 'SELECT * FROM t ORDER BY id');

    const damaged = await freshDatabase();
    const args = baseArgs(await makeProject(revisions('UPDATE t SET x = upper(x) WHERE id = 4;')), damaged.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const caught = await belay([...args, '--yes', 'rollback', '--to', '0001']);
    expect(caught.code, caught.stdout + caught.stderr).toBe(11);
    expect(caught.stdout).toContain('data changed after the rollback: values in public.t.a (x now) changed; restored');
    expect(await damaged.query('SELECT a FROM t WHERE id = 4')).toEqual([{ a: 'x4' }]);
  });

  it('a down that drops the column its up added and swaps values between rows is caught: exit 11, restored (every column\'s sum stayed: exit 0, "data verified")', async () => {
    const db = await freshDatabase();
    const args = baseArgs(
      await makeProject({
        '0001_t.up.sql': "CREATE TABLE t (id int PRIMARY KEY, x text);\nINSERT INTO t SELECT g, 'x' || g FROM generate_series(1, 100) g;",
        '0001_t.down.sql': 'DROP TABLE t;',
        '0002_z.up.sql': 'ALTER TABLE t ADD COLUMN z int;',
        '0002_z.down.sql': "ALTER TABLE t DROP COLUMN z;\nUPDATE t SET x = CASE id WHEN 4 THEN 'x5' ELSE 'x4' END WHERE id IN (4, 5);",
      }),
      db.url,
    );
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const caught = await belay([...args, '--yes', 'rollback', '--to', '0001']);
    expect(caught.code, caught.stdout + caught.stderr).toBe(11);
    expect(caught.stdout).toContain('data changed after the rollback: the content of public.t changed (100 rows, same count, different hash over the columns that stay); restored');
    expect(await db.query('SELECT x FROM t WHERE id IN (4, 5) ORDER BY id')).toEqual([{ x: 'x4' }, { x: 'x5' }]);
  });

  it('a down that re-creates the table without the column its up added, its rows copied over, is verified (it was exit 11, "lost column(s) c that no down was seen to drop"); a value changed in the copy is caught', async () => {
    const revisions = (copy: string): Record<string, string> => ({
      '0001_t.up.sql': "CREATE TABLE t (id int NOT NULL, a text);\nINSERT INTO t SELECT g, 'a' || g FROM generate_series(1, 100) g;",
      '0001_t.down.sql': 'DROP TABLE t;',
      '0002_c.up.sql': 'ALTER TABLE t ADD COLUMN c int DEFAULT 1;',
      '0002_c.down.sql': copy,
    });
    const digest = "SELECT count(*)::int AS n, md5(string_agg(id || ':' || a, ',' ORDER BY id)) AS h FROM t";
    const renamed = (a: string): string => `CREATE TABLE t2 (id int NOT NULL, a text);\nINSERT INTO t2 SELECT id, ${a} FROM t;\nDROP TABLE t;\nALTER TABLE t2 RENAME TO t;`;
    const recreated = 'CREATE TABLE t_keep AS SELECT id, a FROM t;\nDROP TABLE t;\nCREATE TABLE t (id int NOT NULL, a text);\nINSERT INTO t SELECT id, a FROM t_keep;\nDROP TABLE t_keep;';
    for (const down of [renamed('a'), recreated]) {
      const db = await freshDatabase();
      await rollsBackVerified(baseArgs(await makeProject(revisions(down)), db.url), db, digest);
    }
    const damaged = await freshDatabase();
    const args = baseArgs(await makeProject(revisions(renamed("CASE id WHEN 7 THEN 'changed' ELSE a END"))), damaged.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const caught = await belay([...args, '--yes', 'rollback', '--to', '0001']);
    expect(caught.code, caught.stdout + caught.stderr).toBe(11);
    expect(caught.stdout).toMatch(/data changed after the rollback: .*public\.t.*; restored/);
    expect(await damaged.query('SELECT a FROM t WHERE id = 7')).toEqual([{ a: 'a7' }]);
  });

  it('the same for columns of a domain over the enum and of a domain over that one (they compared by label: exit 11); a value the down changed is still caught', async () => {
    const revisions = (down: string): Record<string, string> => ({
      '0001_t.up.sql':
        "CREATE TYPE st_enum AS ENUM ('a', 'b');\nCREATE DOMAIN std AS st_enum;\nCREATE DOMAIN std2 AS std NOT NULL;\nCREATE TABLE t (id int PRIMARY KEY, s std, s2 std2);\n" +
        "INSERT INTO t SELECT g, (ARRAY['a','b'])[1 + g % 2]::st_enum, (ARRAY['b','a'])[1 + g % 2]::st_enum FROM generate_series(1, 2000) g;",
      '0001_t.down.sql': 'DROP TABLE t;\nDROP DOMAIN std2, std;\nDROP TYPE st_enum;',
      '0002_rename.up.sql': "ALTER TYPE st_enum RENAME VALUE 'b' TO 'bee';",
      '0002_rename.down.sql': down,
    });
    const digest = "SELECT count(*)::int AS n, md5(string_agg(id || ':' || s || ':' || s2, ',' ORDER BY id)) AS h FROM t";
    const db = await freshDatabase();
    await rollsBackVerified(baseArgs(await makeProject(revisions("ALTER TYPE st_enum RENAME VALUE 'bee' TO 'b';")), db.url), db, digest);

    for (const change of ["UPDATE t SET s = 'a' WHERE id = 3;", "UPDATE t SET s2 = 'bee' WHERE id = 3;"]) {
      const damaged = await freshDatabase();
      await rollbackCaught(baseArgs(await makeProject(revisions(`${change}\nALTER TYPE st_enum RENAME VALUE 'bee' TO 'b';`)), damaged.url), 'public.t', change);
    }
  });

  it('columns whose type is a domain over an enum, over a domain of one, over an array, over a composite, over citext: migrate up --with-backup and rollback --to verify their data (it was exit 4, "function pg_catalog.enum_out(std) does not exist"); a value the down changed is still caught', async () => {
    const revisions = (down: string): Record<string, string> => ({
      '0001_t.up.sql':
        "CREATE EXTENSION citext;\nCREATE TYPE st AS ENUM ('a', 'b');\nCREATE DOMAIN std AS st;\nCREATE DOMAIN std2 AS std NOT NULL;\nCREATE DOMAIN ints AS int[];\n" +
        'CREATE TYPE pair AS (n int, label text);\nCREATE DOMAIN dpair AS pair;\nCREATE DOMAIN nick AS citext;\n' +
        'CREATE TABLE t (id int PRIMARY KEY, s std, s2 std2, tags ints, p dpair, name nick);\n' +
        "INSERT INTO t SELECT g, (ARRAY['a','b'])[1 + g % 2]::st, (ARRAY['b','a'])[1 + g % 2]::st, ARRAY[g, g + 1], ROW(g, 'L' || g)::pair, 'Nick' || g FROM generate_series(1, 2000) g;",
      '0001_t.down.sql': 'DROP TABLE t;\nDROP DOMAIN nick, dpair, ints, std2, std;\nDROP TYPE pair, st;\nDROP EXTENSION citext;',
      '0002_other.up.sql': 'CREATE TABLE other (id int);',
      '0002_other.down.sql': `${down}DROP TABLE other;`,
    });
    const digest = "SELECT count(*)::int AS n, md5(string_agg(id || ':' || s || ':' || s2 || ':' || tags::text || ':' || p::text || ':' || name, ',' ORDER BY id)) AS h FROM t";
    const db = await freshDatabase();
    await rollsBackVerified(baseArgs(await makeProject(revisions('')), db.url), db, digest, ['migrate', 'up', '--with-backup']);

    for (const change of ["UPDATE t SET s2 = 'b' WHERE id = 1;\n", "UPDATE t SET p = ROW(0, 'L1')::pair WHERE id = 1;\n", "UPDATE t SET name = 'nick1' WHERE id = 1;\n", 'UPDATE t SET tags = ARRAY[1] WHERE id = 1;\n']) {
      const damaged = await freshDatabase();
      await rollbackCaught(baseArgs(await makeProject(revisions(change)), damaged.url), 'public.t', change);
    }
  });

  it('a down that turns a partitioned table back into a plain one under its name compares its rows across the partitions: one that copies a single partition back ends 11 and is restored (it said "data verified", 268 of 1000 rows gone); one that copies them all verifies', async () => {
    const revisions = (copyFrom: string): Record<string, string> => ({
      '0001_events.up.sql': 'CREATE TABLE events (id bigint PRIMARY KEY, at date NOT NULL, body text);',
      '0001_events.down.sql': 'DROP TABLE events;',
      '0002_partition.up.sql':
        'ALTER TABLE events RENAME TO events_old;\nCREATE TABLE events (id bigint NOT NULL, at date NOT NULL, body text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);\n' +
        "CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\nCREATE TABLE events_default PARTITION OF events DEFAULT;\n" +
        'INSERT INTO events SELECT * FROM events_old;\nDROP TABLE events_old;',
      '0002_partition.down.sql':
        `CREATE TABLE events_old (id bigint PRIMARY KEY, at date NOT NULL, body text);\nINSERT INTO events_old SELECT * FROM ${copyFrom};\n` +
        'DROP TABLE events;\nALTER TABLE events_old RENAME TO events;\nALTER INDEX events_old_pkey RENAME TO events_pkey;',
    });
    const rows = "INSERT INTO events SELECT g, date '2024-01-01' + (g % 500), 'r' || g FROM generate_series(1, 1000) g";
    const lossy = await freshDatabase();
    const lossyArgs = baseArgs(await makeProject(revisions('events_2024')), lossy.url);
    expect((await belay([...lossyArgs, 'migrate', 'up'])).code).toBe(0);
    await lossy.appQuery(rows);
    const caught = await belay([...lossyArgs, '--yes', 'rollback', '--to', '0001']);
    expect(caught.code, caught.stdout + caught.stderr).toBe(11);
    expect(caught.stdout + caught.stderr).toContain('public.events had 1000 rows, now 732');
    expect(await lossy.query("SELECT count(*)::int AS n, (SELECT relkind::text FROM pg_class WHERE oid = 'events'::regclass) AS kind FROM events")).toEqual([{ n: 1000, kind: 'p' }]);

    const whole = await freshDatabase();
    const wholeArgs = baseArgs(await makeProject(revisions('events')), whole.url);
    expect((await belay([...wholeArgs, 'migrate', 'up'])).code).toBe(0);
    await whole.appQuery(rows);
    const back = await belay([...wholeArgs, '--yes', 'rollback', '--to', '0001']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(back.stdout).toContain('data verified');
    expect(await whole.query("SELECT count(*)::int AS n, (SELECT relkind::text FROM pg_class WHERE oid = 'events'::regclass) AS kind FROM events")).toEqual([{ n: 1000, kind: 'r' }]);
  });

  it('a down that folds a partition its up split off back into the default one verifies (the default partition "had 268 rows, now 1000": exit 11, restored); one that drops it without its rows ends 11 (it said "data verified")', async () => {
    const revisions = (fold: string): Record<string, string> => ({
      '0001_events.up.sql': 'CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, body text) PARTITION BY RANGE (at);\nCREATE TABLE events_default PARTITION OF events DEFAULT;',
      '0001_events.down.sql': 'DROP TABLE events;',
      '0002_split.up.sql':
        "CREATE TABLE events_2024 (LIKE events);\nINSERT INTO events_2024 SELECT * FROM events_default WHERE at < '2025-01-01';\nDELETE FROM events_default WHERE at < '2025-01-01';\n" +
        "ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');",
      '0002_split.down.sql': `ALTER TABLE events DETACH PARTITION events_2024;\n${fold}DROP TABLE events_2024;`,
    });
    const rows = "INSERT INTO events SELECT g, date '2024-01-01' + (g % 500), 'r' || g FROM generate_series(1, 1000) g";
    const folded = await freshDatabase();
    const foldedArgs = baseArgs(await makeProject(revisions('INSERT INTO events SELECT * FROM events_2024;\n')), folded.url);
    expect((await belay([...foldedArgs, 'migrate', 'up'])).code).toBe(0);
    await folded.appQuery(rows);
    const back = await belay([...foldedArgs, '--yes', 'rollback', '--to', '0001']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(back.stdout).toContain('data verified');
    expect(await folded.query('SELECT count(*)::int AS n FROM events_default')).toEqual([{ n: 1000 }]);

    const dropped = await freshDatabase();
    const droppedArgs = baseArgs(await makeProject(revisions('')), dropped.url);
    expect((await belay([...droppedArgs, 'migrate', 'up'])).code).toBe(0);
    await dropped.appQuery(rows);
    const caught = await belay([...droppedArgs, '--yes', 'rollback', '--to', '0001']);
    expect(caught.code, caught.stdout + caught.stderr).toBe(11);
    expect(caught.stdout + caught.stderr).toContain('public.events had 1000 rows, now 268');
    expect(await dropped.query('SELECT count(*)::int AS n FROM events')).toEqual([{ n: 1000 }]);
  });
});

describe('rollback --to with a down of many statements', () => {
  const keys = Array.from({ length: 1700 }, (_, i) => `k${i + 1}`);
  const revisions = (down: (key: string) => string): Record<string, string> => ({
    '0001_settings.up.sql': 'CREATE TABLE settings (key text PRIMARY KEY, value text);',
    '0001_settings.down.sql': 'DROP TABLE settings;',
    '0002_fill.up.sql': keys.map((key) => `INSERT INTO settings VALUES ('${key}', 'v-${key}');`).join('\n'),
    '0002_fill.down.sql': keys.map(down).join('\n'),
  });
  const digest = "SELECT count(*)::int AS n, md5(string_agg(key || '=' || value, ',' ORDER BY key)) AS h FROM settings";

  it('1,700 DELETEs of a table integrity leaves out: plan counts its rows once, rollback ends 0 with the rows gone (both ended 1, "target lists can have at most 1664 entries")', async () => {
    const db = await freshDatabase();
    const project = await makeProject(revisions((key) => `DELETE FROM settings WHERE key = '${key}';`), { integrity: { tables: { exclude: ['public.settings'] } } });
    const args = [...baseArgs(project, db.url), '--config', join(project.dir, 'belay.config.json')];
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const plan = await belay([...args, '--json', 'plan', '--to', '0001']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    expect((jsonResult(plan) as { dataAtRisk: unknown[] }).dataAtRisk).toEqual([{ revision: '0002_fill', table: 'public.settings', rowsDeleted: true, rows: 1700, values: 1700 }]);
    const back = await belay([...args, '--yes', 'rollback', '--to', '0001']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(back.stdout).toContain('rollback: rolled back to 0001_settings; healthy');
    expect(await db.query('SELECT count(*)::int AS n FROM settings')).toEqual([{ n: 0 }]);
    expect(await db.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_settings' }]);
  }, 180_000);

  it('1,700 UPDATEs: plan counts the rows once, rollback sees the values changed and restores the snapshot (exit 11, rows as before)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(revisions((key) => `UPDATE settings SET value = 'changed' WHERE key = '${key}';`));
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const before = await db.query(digest);
    const plan = await belay([...args, '--json', 'plan', '--to', '0001']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    expect((jsonResult(plan) as { dataAtRisk: unknown[] }).dataAtRisk).toEqual([{ revision: '0002_fill', table: 'public.settings', rowsWritten: true, rows: 1700, values: 1700 }]);
    const back = await belay([...args, '--yes', 'rollback', '--to', '0001']);
    expect(back.code, back.stdout + back.stderr).toBe(11);
    expect(back.stderr).toContain('the content of public.settings changed');
    expect(await db.query(digest)).toEqual(before);
    expect(await db.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_settings' }, { name: '0002_fill' }]);
  }, 180_000);
});
