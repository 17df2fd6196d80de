import { describe, expect, it } from 'vitest';
import { belay, jsonResult } from './support/cli.js';
import { adminQuery, freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

interface Result {
  outcome: string;
  exitCode: number;
  message: string;
  hint?: string;
}

const BASE = {
  '0001_orders.up.sql': 'CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL);\nINSERT INTO orders SELECT g, g FROM generate_series(1, 100) g;',
  '0001_orders.down.sql': 'DROP TABLE orders;',
};

/** An up that adds an extension, two functions and a trigger; its down forgets all but one function. */
const LEAKY = {
  ...BASE,
  '0002_audit.up.sql': `CREATE EXTENSION citext;
CREATE FUNCTION audit_stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.total := NEW.total; RETURN NEW; END $$;
CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM orders';
CREATE TRIGGER orders_audit BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION audit_stamp();
CREATE TABLE audit_log (id int);`,
  '0002_audit.down.sql': 'DROP TABLE audit_log;\nDROP FUNCTION order_count();',
  '0003_notes.up.sql': 'CREATE TABLE notes (id int);',
  '0003_notes.down.sql': 'DROP TABLE notes;',
};

const CLEAN = {
  ...LEAKY,
  '0002_audit.down.sql': 'DROP TABLE audit_log;\nDROP TRIGGER orders_audit ON orders;\nDROP FUNCTION audit_stamp();\nDROP FUNCTION order_count();\nDROP EXTENSION citext;',
};

describe('rollback --to lands on the schema its target left', () => {
  it('downs that leave an extension, a function and a trigger behind: exit 12, each object named, data verified, nothing restored', async () => {
    const db = await freshDatabase();
    const project = await makeProject(LEAKY);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    // made by hand between the revisions: not a down's residue, never counted
    await db.appQuery('CREATE TABLE hand_made (id int)');
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(12);
    const result = jsonResult<Result>(run);
    expect(result.outcome).toBe('manual-action-needed');
    expect(result.message).toContain('the schema is not the one 0001_orders left: 3 object(s) differ');
    expect(result.message).not.toContain('\n');
    expect(result.message).toContain('differ (+ left behind, - missing, ~ changed): + extension citext; + function public.audit_stamp(); + trigger public.orders.orders_audit');
    expect(result.message).not.toContain('order_count');
    expect(result.message).not.toContain('hand_made');
    expect(result.hint).toMatch(/DROP what is left/);
    expect(result.hint).toMatch(/belay restore \S+/);
    // the downs ran and nothing was restored: the leftovers are there, the revisions are reverted
    expect(await db.query("SELECT name FROM belay.migrations ORDER BY name")).toEqual([{ name: '0001_orders' }]);
    expect(await db.query("SELECT to_regprocedure('public.audit_stamp()') IS NOT NULL AS left")).toEqual([{ left: true }]);
    const step = await db.query<{ outcome: string; detail: { added: string[] } }>("SELECT outcome, detail FROM belay.steps WHERE step = 'schema' AND event = 'end'");
    expect(step).toHaveLength(1);
    expect(step[0]!.outcome).toBe('failed');
    expect(step[0]!.detail.added).toEqual(['extension citext', 'function public.audit_stamp()', 'trigger public.orders.orders_audit']);
    const human = await belay([...args, 'history']);
    expect(human.stdout).toMatch(/rollback.*12/);
  });

  it('a down that forgets the column its up added, holding the default the up wrote: exit 12 naming it, data verified, nothing restored', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...BASE, '0002_note.up.sql': "ALTER TABLE orders ADD COLUMN note text NOT NULL DEFAULT 'none';", '0002_note.down.sql': 'SELECT 1;' });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const [before] = await adminQuery<{ oid: string }>('postgres', 'SELECT oid::text FROM pg_database WHERE datname = $1', [db.name]);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(12);
    const result = jsonResult<Result>(run);
    expect(result.outcome).toBe('manual-action-needed');
    expect(result.message).toBe(
      'rollback to 0001_orders; the downs ran and the data is verified, but the schema is not the one 0001_orders left: 1 object(s) differ (+ left behind, - missing, ~ changed): ~ table public.orders (+ column note)',
    );
    expect(result.message).not.toMatch(/restored|data changed/);
    expect(await adminQuery('postgres', 'SELECT oid::text FROM pg_database WHERE datname = $1', [db.name])).toEqual([before]);
    expect(await db.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE note = 'none')::int AS none FROM orders")).toEqual([{ n: 100, none: 100 }]);
    const steps = await db.query<{ step: string; outcome: string }>("SELECT step, outcome FROM belay.steps WHERE step IN ('integrity', 'schema', 'restore') AND event = 'end' ORDER BY run_id, seq");
    expect(steps).toEqual([{ step: 'integrity', outcome: 'ok' }, { step: 'schema', outcome: 'failed' }]);
  });

  it('a down that turns char(n), bit(n) and char(n)[] columns into text, varbit and text[] where they were varchar(n), varbit(n) and varchar(n)[]: exit 12 naming them, data verified, nothing restored (the comparison cast to character and bit, char(1) and bit(1), cutting every value: exit 11, restored)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_codes.up.sql': "CREATE TABLE codes (id int PRIMARY KEY, code varchar(4), flags varbit(3), tags varchar(2)[]);\nINSERT INTO codes SELECT g, 'C' || lpad(g::text, 3, '0'), (g % 8)::bit(3), ARRAY['ab', 'cd'] FROM generate_series(1, 50) g;",
      '0001_codes.down.sql': 'DROP TABLE codes;',
      '0002_fixed.up.sql': 'ALTER TABLE codes ALTER COLUMN code TYPE char(4), ALTER COLUMN flags TYPE bit(3), ALTER COLUMN tags TYPE char(2)[];',
      '0002_fixed.down.sql': 'ALTER TABLE codes ALTER COLUMN code TYPE text, ALTER COLUMN flags TYPE varbit, ALTER COLUMN tags TYPE text[];',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const before = await db.query('SELECT id, code::text, flags::text, tags::text FROM codes ORDER BY id');
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(12);
    const result = jsonResult<Result>(run);
    expect(result.message).toContain('the downs ran and the data is verified, but the schema is not the one 0001_codes left');
    expect(result.message).toContain('~ table public.codes');
    expect(result.message).not.toMatch(/restored|data changed/);
    // not restored: the columns keep the types the down gave them
    expect(await db.query("SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'codes'::regclass AND attnum > 1 ORDER BY attnum")).toEqual([{ t: 'text' }, { t: 'bit varying' }, { t: 'text[]' }]);
    expect(await db.query('SELECT id, code::text, flags::text, tags::text FROM codes ORDER BY id')).toEqual(before);
  });

  it('a down that forgets a publication, a collation, a text search configuration, statistics, an operator, a foreign data wrapper and server, and the table and column settings its up made: exit 12 naming each; a down that undoes them all lands clean', async () => {
    const users = {
      '0001_users.up.sql': 'CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, name text);',
      '0001_users.down.sql': 'DROP TABLE users;',
      '0002_replication.up.sql': `ALTER TABLE users REPLICA IDENTITY FULL;
CREATE PUBLICATION debezium_pub FOR TABLE users;
CREATE COLLATION case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TEXT SEARCH CONFIGURATION english_simple (COPY = pg_catalog.english);
CREATE STATISTICS users_email_name (dependencies) ON email, name FROM users;
CREATE FUNCTION same_id(bigint, bigint) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2';
CREATE OPERATOR === (FUNCTION = same_id, LEFTARG = bigint, RIGHTARG = bigint);
CREATE FOREIGN DATA WRAPPER remote;
CREATE SERVER elsewhere FOREIGN DATA WRAPPER remote;
ALTER TABLE users ALTER COLUMN name SET STORAGE EXTERNAL, ALTER COLUMN name SET COMPRESSION pglz, ALTER COLUMN email SET STATISTICS 500;
ALTER TABLE users CLUSTER ON users_pkey;`,
      '0002_replication.down.sql': 'DROP OPERATOR === (bigint, bigint);\nDROP FUNCTION same_id(bigint, bigint);',
    };
    const db = await freshDatabase();
    // a foreign data wrapper is a superuser's to make
    const args = baseArgs(await makeProject(users), db.adminUrl);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(12);
    expect(jsonResult<Result>(run).message).toContain(
      'the schema is not the one 0001_users left: 8 object(s) differ (+ left behind, - missing, ~ changed): + collation public.case_insensitive; + foreign data wrapper remote; + publication debezium_pub; + server elsewhere; + statistics public.users_email_name; + text search configuration public.english_simple; ~ index public.users_pkey; ~ table public.users',
    );
    const step = await db.query<{ detail: { changed: string[] } }>("SELECT detail FROM belay.steps WHERE step = 'schema' AND event = 'end'");
    expect(step[0]!.detail.changed).toEqual(['index public.users_pkey', 'table public.users']);
    // the downs ran, nothing was restored: the leftovers are there
    expect(await db.query("SELECT relreplident FROM pg_class WHERE oid = 'users'::regclass")).toEqual([{ relreplident: 'f' }]);

    const clean = await freshDatabase();
    const undone = baseArgs(
      await makeProject({
        ...users,
        '0002_replication.down.sql': `ALTER TABLE users SET WITHOUT CLUSTER;
ALTER TABLE users ALTER COLUMN name SET STORAGE EXTENDED, ALTER COLUMN name SET COMPRESSION DEFAULT, ALTER COLUMN email SET STATISTICS -1;
DROP SERVER elsewhere; DROP FOREIGN DATA WRAPPER remote; DROP OPERATOR === (bigint, bigint); DROP FUNCTION same_id(bigint, bigint);
DROP STATISTICS users_email_name; DROP TEXT SEARCH CONFIGURATION english_simple; DROP COLLATION case_insensitive; DROP PUBLICATION debezium_pub;
ALTER TABLE users REPLICA IDENTITY DEFAULT;`,
      }),
      clean.adminUrl,
    );
    expect((await belay([...undone, 'migrate', 'up'])).code).toBe(0);
    const landed = await belay([...undone, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(landed.code, landed.stderr).toBe(0);
    expect(jsonResult<Result>(landed).message).toContain('schema as recorded at 0001_users');
  });

  it('rollback --to 0 compares with an empty schema', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...LEAKY, '0001_orders.down.sql': 'DROP TABLE orders CASCADE;' });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0']);
    expect(run.code, run.stderr).toBe(12);
    const { message } = jsonResult<Result>(run);
    expect(message).toContain('the schema is not the one the start left: 2 object(s) differ');
    expect(message).toContain(': + extension citext; + function public.audit_stamp()');
  });

  it('a clean rollback exits 0 and says the schema is the one recorded at its target', async () => {
    const db = await freshDatabase();
    const project = await makeProject(CLEAN);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(0);
    expect(jsonResult<Result>(run).message).toBe('rolled back to 0001_orders; healthy, data verified; schema as recorded at 0001_orders');
  });

  // an index of a primary key or a unique constraint depends on its constraint, not on its table, yet names the
  // table and its columns; the downs put every name back: the schema is the target's, and nothing differs
  // (`recorded`: objects the last revision's record must name)
  const landsClean = async (files: Record<string, string>, upRuns: string[][], recorded: string[] = []): Promise<void> => {
    const db = await freshDatabase();
    const project = await makeProject(files);
    const args = baseArgs(project, db.url);
    for (const up of upRuns) {
      const run = await belay([...args, 'migrate', 'up', ...up]);
      expect(run.code, run.stderr).toBe(0);
    }
    const [last] = await db.query<{ changes: string[] }>("SELECT ARRAY(SELECT jsonb_object_keys(schema->'changes') ORDER BY 1) AS changes FROM belay.migrations ORDER BY name DESC LIMIT 1");
    expect(last!.changes).toEqual(expect.arrayContaining(recorded));
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stdout).toBe(0);
    const result = jsonResult<Result>(run);
    expect(result.outcome).toBe('ok');
    expect(result.message).toMatch(/^rolled back to 0001_\w+; healthy, data verified; schema as recorded at 0001_\w+$/);
    expect(await db.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: Object.keys(files)[0]!.replace(/\.up\.sql$/, '') }]);
  };

  it('a table with a primary key renamed and renamed back lands clean', async () => {
    await landsClean(
      {
        '0001_invoices.up.sql': 'CREATE TABLE invoices (id int PRIMARY KEY, amount numeric NOT NULL);',
        '0001_invoices.down.sql': 'DROP TABLE invoices;',
        '0002_rename.up.sql': 'ALTER TABLE invoices RENAME TO bills;',
        '0002_rename.down.sql': 'ALTER TABLE bills RENAME TO invoices;',
      },
      [['--with-backup']],
    );
  });

  it('a column of a primary key, a unique constraint and a foreign key from another table, renamed and renamed back, lands clean', async () => {
    // applied in two runs: the rename's record is made apart from the revision that made what it renames
    await landsClean(
      {
        '0001_invoices.up.sql': `CREATE TABLE invoices (id int PRIMARY KEY, code text NOT NULL UNIQUE, amount numeric NOT NULL);
CREATE TABLE lines (invoice int NOT NULL REFERENCES invoices (id), code text REFERENCES invoices (code), qty int);
INSERT INTO invoices SELECT g, 'c' || g, g FROM generate_series(1, 50) g;
INSERT INTO lines SELECT g, 'c' || g, 1 FROM generate_series(1, 50) g;`,
        '0001_invoices.down.sql': 'DROP TABLE lines;\nDROP TABLE invoices;',
        '0002_rename.up.sql': 'ALTER TABLE invoices RENAME COLUMN id TO invoice_id;\nALTER TABLE invoices RENAME COLUMN code TO ref;',
        '0002_rename.down.sql': 'ALTER TABLE invoices RENAME COLUMN invoice_id TO id;\nALTER TABLE invoices RENAME COLUMN ref TO code;',
      },
      [['--to', '0001'], []],
      ['index public.invoices_pkey', 'index public.invoices_code_key', 'constraint public.lines.lines_invoice_fkey', 'constraint public.lines.lines_code_fkey'],
    );
  });

  it('a view over renamed columns (one of them the primary key), renamed back, lands clean', async () => {
    await landsClean(
      {
        '0001_invoices.up.sql': `CREATE TABLE invoices (id int PRIMARY KEY, amount numeric NOT NULL);
CREATE VIEW big_invoices AS SELECT id, amount FROM invoices WHERE amount > 100;`,
        '0001_invoices.down.sql': 'DROP VIEW big_invoices;\nDROP TABLE invoices;',
        '0002_rename.up.sql': 'ALTER TABLE invoices RENAME COLUMN amount TO total;\nALTER TABLE invoices RENAME COLUMN id TO invoice_id;',
        '0002_rename.down.sql': 'ALTER TABLE invoices RENAME COLUMN total TO amount;\nALTER TABLE invoices RENAME COLUMN invoice_id TO id;',
      },
      [[]],
      ['view public.big_invoices', 'index public.invoices_pkey'],
    );
  });

  it('a rename put back with an index of the up left behind: that index alone differs', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_invoices.up.sql': 'CREATE TABLE invoices (id int PRIMARY KEY, code text UNIQUE);',
      '0001_invoices.down.sql': 'DROP TABLE invoices;',
      '0002_rename.up.sql': 'ALTER TABLE invoices RENAME TO bills;\nCREATE INDEX bills_code_lower ON bills (lower(code));',
      '0002_rename.down.sql': 'ALTER TABLE bills RENAME TO invoices;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stdout).toBe(12);
    const result = jsonResult<Result>(run);
    expect(result.outcome).toBe('manual-action-needed');
    expect(result.message).toContain('the schema is not the one 0001_invoices left: 1 object(s) differ (+ left behind, - missing, ~ changed): + index public.bills_code_lower');
  });

  it('a column put back in another order is a warning, not a difference', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_orders.up.sql': 'CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL, placed_at date);\nINSERT INTO orders SELECT g, g FROM generate_series(1, 100) g;',
      '0001_orders.down.sql': 'DROP TABLE orders;',
      '0002_narrow.up.sql': 'ALTER TABLE orders DROP COLUMN total;',
      '0002_narrow.down.sql': 'ALTER TABLE orders ADD COLUMN total numeric NOT NULL DEFAULT 0;\nALTER TABLE orders ALTER COLUMN total DROP DEFAULT;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(0);
    expect(jsonResult<Result>(run).message).toContain('warning: the columns of public.orders stand in another order');
  });

  it('a down that renames two columns back across each other (values under the wrong names): exit 12 naming them (it was exit 0, "data verified", and a column-order warning)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_people.up.sql': "CREATE TABLE people (id int PRIMARY KEY, first text, last text);\nINSERT INTO people SELECT g, 'f' || g, 'l' || g FROM generate_series(1, 100) g;",
      '0001_people.down.sql': 'DROP TABLE people;',
      '0002_names.up.sql': 'ALTER TABLE people RENAME COLUMN first TO given;\nALTER TABLE people RENAME COLUMN last TO family;',
      '0002_names.down.sql': 'ALTER TABLE people RENAME COLUMN given TO last;\nALTER TABLE people RENAME COLUMN family TO first;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(12);
    expect(jsonResult<Result>(run).message).toContain('~ table public.people (columns first, last renamed across: each holds the values another had at the target)');
    expect(jsonResult<Result>(run).message).not.toContain('warning');
  });

  it('a reverted revision applied before belay recorded what each changes is reported as not compared', async () => {
    const db = await freshDatabase();
    const project = await makeProject(LEAKY);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    // no record, and the whole-schema record an earlier belay kept: neither says what was there before
    await db.query("UPDATE belay.migrations SET schema = NULL WHERE name = '0002_audit'");
    await db.query(`UPDATE belay.migrations SET schema = '{"digest": "x", "objects": {}, "columnOrder": {}, "changed": []}' WHERE name = '0003_notes'`);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(0);
    expect(jsonResult<Result>(run).message).toContain('schema not compared (0002_audit was applied before belay recorded what each revision changes)');
  });

  it('a target applied before belay recorded anything is compared through what the reverted revisions recorded', async () => {
    const db = await freshDatabase();
    const project = await makeProject(LEAKY);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    await db.query("UPDATE belay.migrations SET schema = NULL WHERE name = '0001_orders'");
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(12);
    expect(jsonResult<Result>(run).message).toContain(': + extension citext; + function public.audit_stamp(); + trigger public.orders.orders_audit');
  });

  it('an install from before the schema column gets it on its next changing command', async () => {
    const db = await freshDatabase();
    const project = await makeProject(BASE);
    const args = baseArgs(project, db.url);
    await db.appQuery(`CREATE SCHEMA belay;
      CREATE TABLE belay.migrations (name text PRIMARY KEY, checksum text NOT NULL, files jsonb NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms integer NOT NULL, run_id uuid);
      CREATE TABLE belay.runs (id uuid PRIMARY KEY, command text NOT NULL, status text NOT NULL, started_at timestamptz NOT NULL, finished_at timestamptz, from_revision text, to_revision text, exit_code integer, snapshot_id text, last_step text, run_by text NOT NULL, summary jsonb);
      CREATE TABLE belay.steps (run_id uuid NOT NULL, seq integer NOT NULL, at timestamptz NOT NULL, step text NOT NULL, event text NOT NULL, revision text, subject text, outcome text, duration_ms integer, detail jsonb, PRIMARY KEY (run_id, seq));`);
    const run = await belay([...args, 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(0);
    const rows = await db.query<{ changes: string[] }>("SELECT ARRAY(SELECT jsonb_object_keys(schema->'changes') ORDER BY 1) AS changes FROM belay.migrations");
    expect(rows).toEqual([{ changes: ['constraint public.orders.orders_pkey', 'index public.orders_pkey', 'table public.orders'] }]);
  });
});

describe("migrate up's automatic rollback lands on the schema the run started from", () => {
  const rejectedAfter = (up: string, down: string): Record<string, string> => ({
    ...BASE,
    '0002_more.up.sql': up,
    '0002_more.down.sql': down,
    '0003_bad.up.sql': 'SELECT 1/0;',
    '0003_bad.down.sql': 'SELECT 1;',
  });

  const schemaStep = (db: TestDatabase) =>
    db.query<{ outcome: string; detail: { target: string; added: string[]; changed: string[] } }>("SELECT outcome, detail FROM belay.steps WHERE step = 'schema' AND event = 'end'");

  it('a down that forgets a table and a function its up made: exit 12, both named, never "data verified intact"; the downs ran, nothing restored', async () => {
    const db = await freshDatabase();
    const project = await makeProject(
      rejectedAfter(
        "CREATE TABLE leftover (id int);\nCREATE FUNCTION leftfn() RETURNS int LANGUAGE sql AS 'SELECT 1';\nCREATE TABLE kept (id int);",
        'DROP TABLE kept;',
      ),
    );
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stderr).toBe(12);
    const result = jsonResult<Result>(run);
    expect(result.outcome).toBe('manual-action-needed');
    expect(result.message).toMatch(/^change rejected \(0003_bad up failed at .*division by zero.*\); the downs ran and the data is verified, but the schema is not the one 0001_orders left: 2 object\(s\) differ/);
    expect(result.message).toContain('differ (+ left behind, - missing, ~ changed): + function public.leftfn(); + table public.leftover');
    expect(result.message).not.toMatch(/rolled back|intact/);
    expect(result.hint).toMatch(/DROP what is left.*then run `belay migrate up` again/);
    expect(result.hint).toMatch(/Or put back the state the run started from \(at 0001_orders\): belay restore \S+$/);
    // one line of sentences, not ".; Or"
    expect(JSON.parse(run.stdout).next).toMatch(/shows the run\. Or put back the state/);
    expect(await db.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_orders' }]);
    expect(await db.query("SELECT to_regclass('public.leftover') IS NOT NULL AS table, to_regprocedure('public.leftfn()') IS NOT NULL AS fn")).toEqual([{ table: true, fn: true }]);
    const step = await schemaStep(db);
    expect(step).toHaveLength(1);
    expect(step[0]!.outcome).toBe('failed');
    expect(step[0]!.detail.target).toBe('0001_orders');
    expect(step[0]!.detail.added).toEqual(['function public.leftfn()', 'table public.leftover']);
  });

  it('an up that detaches a partition its down does not attach again: the partition named, exit 12, though each partition holds its rows', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_events.up.sql': `CREATE TABLE events (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE events_2020 PARTITION OF events FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE events_2021 PARTITION OF events FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
INSERT INTO events SELECT g, date '2020-01-01' + g FROM generate_series(1, 700) g;`,
      '0001_events.down.sql': 'DROP TABLE events;',
      '0002_archive.up.sql': 'ALTER TABLE events DETACH PARTITION events_2020;',
      '0002_archive.down.sql': 'SELECT 1;',
      '0003_bad.up.sql': 'SELECT 1/0;',
      '0003_bad.down.sql': 'SELECT 1;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const run = await belay([...args, '--json', 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(12);
    const { message } = jsonResult<Result>(run);
    expect(message).toContain('the data is verified, but the schema is not the one 0001_events left');
    expect(message).toContain('~ table public.events_2020');
    expect(message).not.toContain('intact');
    expect(await db.query('SELECT count(*)::int AS n FROM events')).toEqual([{ n: 335 }]);
    const step = await schemaStep(db);
    expect(step[0]!.outcome).toBe('failed');
    expect(step[0]!.detail.changed).toContain('table public.events_2020');
  });

  it('downs that put back everything their ups made: exit 10, "data verified intact" as before', async () => {
    const db = await freshDatabase();
    const project = await makeProject(rejectedAfter("CREATE TABLE kept (id int);\nCREATE FUNCTION leftfn() RETURNS int LANGUAGE sql AS 'SELECT 1';", 'DROP FUNCTION leftfn();\nDROP TABLE kept;'));
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const run = await belay([...args, '--json', 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(10);
    expect(jsonResult<Result>(run).message).toMatch(/; rolled back to 0001_orders, data verified intact$/);
    const step = await schemaStep(db);
    expect(step.map((s) => s.outcome)).toEqual(['ok']);
  });
});
