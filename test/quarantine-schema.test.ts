import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/db/ident.js';
import { belay, jsonResult } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

// A touched snapshot's restore keeps the damaged tables in a belay_quarantine_<time> schema (docs/snapshots.md):
// kept for inspection, and cut loose from the live tables, so that it never blocks what the application or a later down does.
const REVISIONS: Record<string, string> = {
  '0001_shop.up.sql': `CREATE TABLE audit (id serial PRIMARY KEY, note text NOT NULL);
CREATE FUNCTION default_tag() RETURNS text LANGUAGE sql AS $$ SELECT 'web' $$;
CREATE FUNCTION orders_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.audit (note) VALUES ('order ' || NEW.id); RETURN NEW; END $$;
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5) g;
CREATE TABLE orders (id serial PRIMARY KEY, item_id int NOT NULL REFERENCES items, qty int NOT NULL, tag text DEFAULT default_tag());
CREATE TRIGGER orders_audit AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION orders_audit();
INSERT INTO orders (item_id, qty) SELECT 1 + g % 5, g FROM generate_series(1, 100) g;
CREATE TABLE shipments (id int PRIMARY KEY, order_id int REFERENCES orders);
INSERT INTO shipments SELECT g, g FROM generate_series(1, 20) g;`,
  '0001_shop.down.sql': 'DROP TABLE shipments; DROP TABLE orders; DROP TABLE items; DROP FUNCTION orders_audit(); DROP FUNCTION default_tag(); DROP TABLE audit;',
  // the up breaks health (the table bad exists); the down loses rows, which integrity finds: the touched snapshot is restored
  '0002_bad.up.sql': 'CREATE TABLE bad (id int);',
  '0002_bad.down.sql': 'DROP TABLE bad;\nDELETE FROM orders WHERE id > 90;',
};

const CONFIG = { health: { sql: [{ name: 'no bad table', query: "select 1 from pg_tables where tablename = 'bad' and schemaname = 'public'", expect: 'no-rows' }] } };

/** The dependencies that cross between the quarantine schema and the rest of the user's objects, in either direction. */
const CROSSING = `
WITH owner(classid, objid, nsp) AS (
  SELECT 'pg_class'::regclass, c.oid, c.relnamespace FROM pg_class c
  UNION ALL SELECT 'pg_constraint'::regclass, con.oid, coalesce(c.relnamespace, con.connamespace) FROM pg_constraint con LEFT JOIN pg_class c ON c.oid = con.conrelid
  UNION ALL SELECT 'pg_trigger'::regclass, t.oid, c.relnamespace FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  UNION ALL SELECT 'pg_attrdef'::regclass, d.oid, c.relnamespace FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid
  UNION ALL SELECT 'pg_proc'::regclass, p.oid, p.pronamespace FROM pg_proc p
)
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS dependent, pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) AS referenced
  FROM pg_depend d JOIN owner a ON a.classid = d.classid AND a.objid = d.objid JOIN owner b ON b.classid = d.refclassid AND b.objid = d.refobjid
 WHERE (a.nsp = $1::regnamespace) <> (b.nsp = $1::regnamespace) AND NOT a.nsp IN ('pg_catalog'::regnamespace, 'pg_toast'::regnamespace) AND NOT b.nsp IN ('pg_catalog'::regnamespace, 'pg_toast'::regnamespace)`;

describe('the quarantine schema of a touched restore', () => {
  it('keeps the damaged rows but holds no foreign key, trigger or default on live objects; status lists it; later downs and deletes go through', async () => {
    const db = await freshDatabase();
    const project = await makeProject(REVISIONS, CONFIG);
    const args = [...baseArgs(project, db.url), '--config', `${project.dir}/belay.config.json`];
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const ordersBefore = await db.query('SELECT * FROM orders ORDER BY id');
    const before = await belay([...args, '--json', 'backup']);
    expect(before.code, before.stdout + before.stderr).toBe(0);
    const fullAt0001 = jsonResult<{ snapshot: { id: string } }>(before).snapshot.id;

    // touched: auto takes a full snapshot of a table with a trigger (the empty copy cannot show what it writes)
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'touched', '--health-timeout', '0']);
    expect(run.code, run.stdout + run.stderr).toBe(11);
    const result = jsonResult<{ outcome: string; message: string; hint: string; restore: { ok: boolean; quarantineSchema: string; message: string } }>(run);
    expect(result.outcome).toBe('restored');
    const q = result.restore.quarantineSchema;
    expect(q).toMatch(/^belay_quarantine_\w+$/);
    // what to do with what was kept, as a swap's 11 says it of the database it kept
    expect(result.hint).toBe(`The damaged tables and what the run created are kept in schema ${q}; drop it yourself when done: DROP SCHEMA ${quoteIdent(q)} CASCADE;`);
    expect((JSON.parse(run.stdout) as { next: string }).next).toBe(result.hint);
    // what was cut is said in the outcome, and the journal's restore step
    expect(result.message).toContain(`foreign key orders_item_id_fkey of ${q}.orders onto public.items`);
    expect(result.message).toContain('foreign key shipments_order_id_fkey of public.shipments onto public.orders (re-made onto the restored table)');
    expect(result.message).toContain(`trigger orders_audit on ${q}.orders`);
    expect(result.message).toContain(`default of ${q}.orders.tag`);

    // the live table is back; the damaged one is kept with its rows intact
    expect(await db.query('SELECT * FROM orders ORDER BY id')).toEqual(ordersBefore);
    expect(await db.query(`SELECT count(*)::int AS n, max(id) AS top FROM ${quoteIdent(q)}.orders`)).toEqual([{ n: 90, top: 90 }]);
    expect(await db.query(`SELECT count(*)::int AS n FROM ${quoteIdent(q)}.orders WHERE tag = 'web'`)).toEqual([{ n: 90 }]);
    // nothing ties the quarantine to the live objects, either way
    expect(await db.query(CROSSING, [q])).toEqual([]);
    // the restored table has its own foreign key, trigger and default back
    expect(await db.query("SELECT conname FROM pg_constraint WHERE conrelid = 'public.orders'::regclass AND contype = 'f'")).toEqual([{ conname: 'orders_item_id_fkey' }]);
    expect(await db.query("SELECT conname FROM pg_constraint WHERE conrelid = 'public.shipments'::regclass AND confrelid = 'public.orders'::regclass")).toEqual([{ conname: 'shipments_order_id_fkey' }]);
    expect(await db.query("SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.orders'::regclass AND NOT tgisinternal")).toEqual([{ tgname: 'orders_audit' }]);

    // status names the schema and how to drop it once checked
    const status = await belay([...args, '--json', 'status']);
    expect(jsonResult<{ leftovers: unknown[] }>(status).leftovers).toContainEqual({ name: q, kind: 'quarantine-schema', drop: `DROP SCHEMA ${quoteIdent(q)} CASCADE;` });
    expect((await belay([...args, 'status'])).stdout).toContain(`LEFT      ${q}: the schema a targeted restore kept the damaged tables in; once you have checked it: DROP SCHEMA ${quoteIdent(q)} CASCADE;`);

    // an in-place restore of a full snapshot taken before the quarantine existed leaves it alone: not dropped, not counted against the restore
    const inPlace = await belay([...args, '--json', '--yes', 'restore', fullAt0001, '--strategy', 'in-place']);
    expect(inPlace.code, inPlace.stdout + inPlace.stderr).toBe(0);
    expect(jsonResult<{ message: string }>(inPlace).message).not.toContain(q);
    expect(await db.query(`SELECT count(*)::int AS n FROM ${quoteIdent(q)}.orders`)).toEqual([{ n: 90 }]);
    expect(await db.query('SELECT * FROM orders ORDER BY id')).toEqual(ordersBefore);

    // the application deletes an item no live order needs: the quarantined copy does not stand in the way
    await db.appQuery('DELETE FROM shipments WHERE order_id IN (SELECT id FROM orders WHERE item_id = 2); DELETE FROM orders WHERE item_id = 2; DELETE FROM items WHERE id = 2');
    expect(await db.query('SELECT count(*)::int AS n FROM audit')).toEqual([{ n: 0 }]);

    // the fixed revision goes in, and a rollback lands on 0001's recorded schema: the quarantine is not held against it
    await writeFile(join(project.migrations, '0002_bad.up.sql'), 'CREATE TABLE good (id int);');
    await writeFile(join(project.migrations, '0002_bad.down.sql'), 'DROP TABLE good;');
    const fixed = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
    const back = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(jsonResult<{ message: string }>(back).message).toMatch(/^rolled back to 0001_shop; healthy, data verified; schema as recorded at 0001_shop/);

    // a later rollback's downs drop the live tables and functions the quarantined ones used
    const rollback = await belay([...args, '--json', '--yes', 'rollback', '--to', '0']);
    expect(rollback.code, rollback.stdout + rollback.stderr).toBe(0);
    expect(await db.query("SELECT to_regclass('public.items') AS items, to_regprocedure('public.default_tag()') AS fn")).toEqual([{ items: null, fn: null }]);
    expect(await db.query(`SELECT count(*)::int AS n FROM ${quoteIdent(q)}.orders`)).toEqual([{ n: 90 }]);
    // and a restore or prune never drops the quarantine silently
    const prune = await belay([...args, '--yes', 'backups', 'prune', '--keep', '1']);
    expect(prune.code, prune.stdout + prune.stderr).toBe(0);
    expect(await db.query('SELECT nspname FROM pg_namespace WHERE nspname = $1', [q])).toEqual([{ nspname: q }]);
  });

  it('a live default on a sequence that moved into the quarantine is pointed at the restored sequence', async () => {
    const db = await freshDatabase();
    const project = await makeProject(
      {
        '0001_tickets.up.sql': `CREATE SEQUENCE shared_seq;
CREATE TABLE tickets (id bigint PRIMARY KEY DEFAULT nextval('shared_seq'), note text);
CREATE TABLE orders (id bigint PRIMARY KEY DEFAULT nextval('shared_seq'), qty int NOT NULL);
INSERT INTO tickets (note) SELECT 'ticket ' || g FROM generate_series(1, 5) g;
INSERT INTO orders (qty) SELECT g FROM generate_series(1, 50) g;`,
        '0001_tickets.down.sql': 'DROP TABLE orders; DROP TABLE tickets; DROP SEQUENCE shared_seq;',
        '0002_bad.up.sql': 'CREATE TABLE bad (id int);\nINSERT INTO orders (qty) VALUES (1000);',
        '0002_bad.down.sql': 'DROP TABLE bad;\nDELETE FROM orders WHERE qty >= 40;',
      },
      CONFIG,
    );
    const args = [...baseArgs(project, db.url), '--config', `${project.dir}/belay.config.json`];
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup', '--health-timeout', '0']);
    expect(run.code, run.stdout + run.stderr).toBe(11);
    const { restore } = jsonResult<{ restore: { quarantineSchema: string; severed: string[]; stillTied: string[] } }>(run);
    const q = restore.quarantineSchema;
    expect(restore.severed).toContainEqual(expect.stringMatching(new RegExp(`^default of public\\.tickets\\.id pointed from ${q}\\.shared_seq at the restored public\\.shared_seq`)));
    expect(restore.stillTied).toEqual([]);
    expect(await db.query(CROSSING, [q])).toEqual([]);
    expect(await db.query("SELECT pg_get_expr(adbin, adrelid) AS expr FROM pg_attrdef WHERE adrelid = 'public.tickets'::regclass")).toEqual([{ expr: "nextval('shared_seq'::regclass)" }]);
    // the live table goes on numbering from the restored sequence, past every id it was used for
    const [ticket] = await db.appQuery<{ id: string }>("INSERT INTO tickets (note) VALUES ('new') RETURNING id");
    expect(Number(ticket!.id)).toBeGreaterThan(55);
    expect(await db.query(`SELECT count(*)::int AS n FROM ${quoteIdent(q)}.orders`)).toEqual([{ n: 39 }]);
  });
});
