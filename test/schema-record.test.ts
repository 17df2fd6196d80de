import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startCluster, stopCluster } from '../src/cluster/local-cluster.js';
import { serverUser } from '../src/cluster/os-user.js';
import { startTempCluster } from '../src/cluster/temp-cluster.js';
import { ensureBelaySchema } from '../src/db/belay-schema.js';
import { describeSchema, hashOf, type SchemaChanges, type SchemaDescription } from '../src/integrity/schema-digest.js';
import { changedKeysQuery, OID_FLOOR } from '../src/integrity/schema-query.js';
import { ensureTrackerFunction } from '../src/integrity/tracker-function.js';
import { discoverRevisions } from '../src/migrations/discover.js';
import { MigrationEngine } from '../src/migrations/engine.js';
import type { Revision } from '../src/migrations/revision.js';
import { quoteIdent } from '../src/db/ident.js';
import { freshDatabase, TEST_APP_ROLE, type TestDatabase } from './support/pg.js';

/**
 * Each revision changes the schema in a way whose effect on other objects'
 * descriptions is indirect (a rename that a view, an index, a trigger or a
 * default names; a drop that cascades), or hides its writes in a
 * subtransaction. What the engine records for each revision, folded over
 * the schema before the run, must be what a full description of the schema
 * says at that moment.
 */
const REVISIONS: Array<[string, string]> = [
  [
    'base',
    `CREATE TYPE mood AS ENUM ('sad', 'ok');
     CREATE DOMAIN positive AS int CHECK (VALUE > 0);
     CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, mood mood DEFAULT 'ok', n positive);
     CREATE INDEX people_name ON people (lower(name));
     CREATE TABLE pets (id int PRIMARY KEY, owner int REFERENCES people (id));
     CREATE VIEW named AS SELECT id, name FROM people;
     CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
     CREATE TRIGGER people_touch BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION touch();`,
  ],
  ['rename_table', 'ALTER TABLE people RENAME TO persons'],
  ['rename_column', 'ALTER TABLE persons RENAME COLUMN name TO full_name'],
  ['rename_function', 'ALTER FUNCTION touch() RENAME TO touch_row'],
  ['rename_sequence', 'ALTER SEQUENCE people_id_seq RENAME TO persons_id_seq'],
  ['enum_value', "ALTER TYPE mood ADD VALUE 'happy'"],
  ['rename_type', 'ALTER TYPE mood RENAME TO feeling'],
  [
    'subtransaction',
    `DO $$ BEGIN CREATE TYPE status AS ENUM ('on', 'off'); EXCEPTION WHEN duplicate_object THEN NULL; END $$;
     DO $$ BEGIN ALTER TABLE pets ADD COLUMN status status; EXCEPTION WHEN duplicate_column THEN NULL; END $$;`,
  ],
  ['drop_cascade', 'DROP FUNCTION touch_row() CASCADE; DROP VIEW named; ALTER TABLE persons DROP COLUMN mood'],
  ['composite', 'CREATE TYPE pair AS (a int, b int); ALTER TYPE pair ADD ATTRIBUTE c text'],
  ['owned_by', 'CREATE SEQUENCE loose; ALTER SEQUENCE loose OWNED BY pets.id; ALTER INDEX people_name RENAME TO persons_name'],
  ['constraint', 'ALTER TABLE pets ADD CONSTRAINT owner_set CHECK (owner IS NOT NULL) NOT VALID; ALTER DOMAIN positive RENAME CONSTRAINT positive_check TO above_zero'],
  ['new_schema', 'CREATE SCHEMA app; ALTER TABLE pets SET SCHEMA app'],
  ['rename_schema', 'ALTER SCHEMA app RENAME TO shop'],
  ['data_only', "INSERT INTO persons (full_name) VALUES ('someone'); UPDATE persons SET n = 1"],
  ['drop_all', 'DROP SCHEMA shop CASCADE; DROP TABLE persons; DROP DOMAIN positive; DROP TYPE feeling; DROP TYPE status; DROP TYPE pair'],
  // columns changed in place: pg_attribute rows updated, pg_attrdef rows added and replaced, no new relation
  ['again', 'CREATE TABLE things (id int, note text); CREATE INDEX things_note ON things (note)'],
  ['defaults', "ALTER TABLE things ADD COLUMN born date DEFAULT '2020-01-01'; ALTER TABLE things ALTER COLUMN note SET DEFAULT 'x'"],
  ['column_changes', "ALTER TABLE things ALTER COLUMN id SET NOT NULL; ALTER TABLE things ALTER COLUMN id TYPE bigint; ALTER TABLE things ALTER COLUMN born SET DEFAULT '2021-01-01'"],
  ['index_only', 'CREATE UNIQUE INDEX things_id ON things (id)'],
  // a dependency alone, on objects from before: no new OID names it
  ['sequence', 'CREATE SEQUENCE counter'],
  ['owned', 'ALTER SEQUENCE counter OWNED BY things.id'],
  ['owned_none', 'ALTER SEQUENCE counter OWNED BY NONE'],
  // a table made (its pg_attribute rows inserted, two updated by its defaults) beside columns of a table from before
  // changed: the updated rows of the older one are found through the lock the change holds on it
  ['mixed', "CREATE TABLE extra (id int DEFAULT 1, note text DEFAULT ''); ALTER TABLE things RENAME COLUMN note TO remark; ALTER TABLE things ALTER COLUMN id DROP NOT NULL"],
  // objects of catalogs of their own, renamed, given and taken parts (a member taken out is a row deleted), dropped
  [
    'objects',
    `CREATE TABLE pub_t (id int PRIMARY KEY, a text, b text); CREATE PUBLICATION pub FOR TABLE pub_t;
     CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false); CREATE TEXT SEARCH CONFIGURATION ts (COPY = pg_catalog.simple);
     CREATE STATISTICS pub_ab ON a, b FROM pub_t; CREATE FUNCTION same(int, int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2';
     CREATE OPERATOR === (FUNCTION = same, LEFTARG = int, RIGHTARG = int)`,
  ],
  ['objects_renamed', 'ALTER TABLE pub_t RENAME TO pub_table; ALTER TABLE pub_table RENAME COLUMN a TO aa; ALTER FUNCTION same(int, int) RENAME TO same_int; ALTER TEXT SEARCH CONFIGURATION ts ALTER MAPPING FOR word WITH english_stem'],
  [
    'parts_taken',
    `ALTER PUBLICATION pub DROP TABLE pub_table; ALTER TEXT SEARCH CONFIGURATION ts DROP MAPPING FOR asciiword; ALTER STATISTICS pub_ab RENAME TO pub_stats;
     ALTER TABLE pub_table REPLICA IDENTITY USING INDEX pub_t_pkey; ALTER TABLE pub_table CLUSTER ON pub_t_pkey; ALTER TABLE pub_table ALTER COLUMN b SET STORAGE MAIN`,
  ],
  ['objects_dropped', 'DROP PUBLICATION pub; DROP COLLATION ci; DROP TEXT SEARCH CONFIGURATION ts; DROP OPERATOR === (int, int); DROP TABLE pub_table'],
];

/**
 * Renames that show in descriptions a step away in pg_depend from what was
 * renamed: the index of a primary key, a unique or an exclusion constraint
 * depends on its constraint, not on its table, yet its definition names the
 * table and its columns; a stand-alone composite type is described as its
 * pg_type, while its pg_class row is what depends on its attributes' types.
 * Each rename comes a revision after what it renames was made (a revision
 * describes again what the one before it wrote, which would hide a dependent
 * left out), and the last puts every name back.
 */
const RENAMES: Array<[string, string]> = [
  [
    'base',
    `CREATE TYPE mood AS ENUM ('sad', 'ok');
     CREATE TYPE pair AS (m mood, n int);
     CREATE FUNCTION widened(r int4range) RETURNS int4range LANGUAGE sql IMMUTABLE AS 'SELECT int4range(lower(r) - 1, upper(r) + 1)';
     CREATE TABLE invoices (id int PRIMARY KEY, code text UNIQUE, during int4range, amount numeric NOT NULL CHECK (amount >= 0), EXCLUDE USING gist (during WITH &&),
       CONSTRAINT apart EXCLUDE USING gist (widened(during) WITH &&));
     CREATE INDEX invoices_amount ON invoices (amount);
     CREATE INDEX invoices_code_lower ON invoices (lower(code));
     CREATE SEQUENCE invoice_numbers OWNED BY invoices.id;
     CREATE TABLE lines (invoice int REFERENCES invoices (id), code text REFERENCES invoices (code), n int DEFAULT nextval('invoice_numbers'));
     CREATE VIEW totals AS SELECT id, code, amount FROM invoices;
     ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
     CREATE POLICY positive ON invoices USING (amount >= 0);
     CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
     CREATE TRIGGER invoices_touch BEFORE UPDATE OF amount ON invoices FOR EACH ROW EXECUTE FUNCTION touch();
     CREATE TABLE events (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
     CREATE TABLE events_2020 PARTITION OF events FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');`,
  ],
  ['after_base', 'SELECT 1'],
  ['rename_table', 'ALTER TABLE invoices RENAME TO bills'],
  ['after_table', 'SELECT 1'],
  ['rename_columns', 'ALTER TABLE bills RENAME COLUMN id TO bill_id; ALTER TABLE bills RENAME COLUMN code TO ref; ALTER TABLE events RENAME COLUMN id TO event_id'],
  ['after_columns', 'SELECT 1'],
  ['rename_range_column', 'ALTER TABLE bills RENAME COLUMN during TO span'],
  ['rename_type', 'ALTER TYPE mood RENAME TO feeling'],
  ['rename_sequence', 'ALTER SEQUENCE invoice_numbers RENAME TO bill_numbers'],
  ['after_sequence', 'SELECT 1'],
  ['rename_function', 'ALTER FUNCTION widened(int4range) RENAME TO padded'],
  ['after_function', 'SELECT 1'],
  [
    'rename_back',
    `ALTER TABLE bills RENAME COLUMN bill_id TO id; ALTER TABLE bills RENAME COLUMN ref TO code; ALTER TABLE bills RENAME COLUMN span TO during;
     ALTER TABLE bills RENAME TO invoices; ALTER TYPE feeling RENAME TO mood; ALTER SEQUENCE bill_numbers RENAME TO invoice_numbers;
     ALTER FUNCTION padded(int4range) RENAME TO widened; ALTER TABLE events RENAME COLUMN event_id TO id`,
  ],
];

/**
 * Writes to the rows of a table, a view, a type or their columns that others
 * name, each in its own revision with a revision of nothing after it (so that
 * no revision's record can lean on the one before describing again what that
 * wrote): the changes that rename or move something must reach every
 * description that names it, the others only the object written.
 */
const NAMED: Array<[string, string]> = [
  [
    'base',
    `CREATE SCHEMA app;
     CREATE TYPE mood AS ENUM ('sad', 'ok');
     CREATE TYPE pair AS (a int, b int);
     CREATE DOMAIN positive AS int CHECK (VALUE > 0);
     CREATE SEQUENCE hub_seq;
     CREATE TABLE hub (id int PRIMARY KEY DEFAULT nextval('hub_seq'), code text UNIQUE, n int CHECK (n > 0), m mood, p pair, d positive,
       g int GENERATED ALWAYS AS (n * 2) STORED);
     CREATE INDEX hub_lower ON hub (lower(code)) WHERE n > 1;
     CREATE TABLE spoke (id int PRIMARY KEY, hub int REFERENCES hub (id) ON DELETE CASCADE, code text REFERENCES hub (code));
     CREATE VIEW hub_codes AS SELECT id, code, (p).a AS pa FROM hub;
     CREATE VIEW hub_all AS SELECT * FROM hub;
     CREATE VIEW nested AS SELECT code FROM hub_codes;
     CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
     CREATE TRIGGER hub_touch BEFORE UPDATE OF n ON hub FOR EACH ROW WHEN (OLD.n IS DISTINCT FROM NEW.n) EXECUTE FUNCTION touch();
     ALTER TABLE hub ENABLE ROW LEVEL SECURITY;
     CREATE POLICY hub_pos ON hub USING (n > 0);
     CREATE FUNCTION hub_count() RETURNS bigint LANGUAGE sql STABLE BEGIN ATOMIC SELECT count(code) FROM hub; END;
     CREATE TABLE parted (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
     CREATE TABLE parted_2020 PARTITION OF parted FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
     CREATE TABLE parent (id int, note text);
     CREATE TABLE child () INHERITS (parent);
     CREATE TABLE loose (id int PRIMARY KEY)`,
  ],
  ['add_column', 'ALTER TABLE hub ADD COLUMN extra text'],
  ['add_column_default', 'ALTER TABLE hub ADD COLUMN extra2 int NOT NULL DEFAULT 5'],
  ['set_default', "ALTER TABLE hub ALTER COLUMN code SET DEFAULT 'x'"],
  ['drop_default', 'ALTER TABLE hub ALTER COLUMN code DROP DEFAULT'],
  ['not_null', 'ALTER TABLE hub ALTER COLUMN code SET NOT NULL'],
  ['statistics', 'ALTER TABLE hub ALTER COLUMN n SET STATISTICS 500; ALTER TABLE hub ALTER COLUMN code SET STORAGE EXTERNAL'],
  ['table_options', 'ALTER TABLE hub FORCE ROW LEVEL SECURITY; ALTER TABLE hub SET (fillfactor = 80); ALTER TABLE hub REPLICA IDENTITY FULL'],
  ['new_index', 'CREATE INDEX hub_n ON hub (n)'],
  ['new_foreign_key', 'ALTER TABLE spoke ADD CONSTRAINT spoke_same FOREIGN KEY (id) REFERENCES hub (id) NOT VALID'],
  ['validate', 'ALTER TABLE spoke VALIDATE CONSTRAINT spoke_same'],
  ['clustered', 'ALTER TABLE hub CLUSTER ON hub_pkey'],
  ['rename_column', 'ALTER TABLE hub RENAME COLUMN code TO ref'],
  ['rename_constraint', 'ALTER TABLE hub RENAME CONSTRAINT hub_n_check TO hub_positive'],
  ['rename_index', 'ALTER INDEX hub_lower RENAME TO hub_ref_lower'],
  ['rename_table', 'ALTER TABLE hub RENAME TO centre'],
  ['set_schema', 'ALTER TABLE centre SET SCHEMA app'],
  ['rename_view_column', 'ALTER VIEW hub_codes RENAME COLUMN pa TO first'],
  ['replace_view', 'CREATE OR REPLACE VIEW hub_codes AS SELECT id, ref AS code, (p).a AS first, n FROM app.centre'],
  ['rename_attribute', 'ALTER TYPE pair RENAME ATTRIBUTE a TO left_side'],
  ['rename_enum_value', "ALTER TYPE mood RENAME VALUE 'ok' TO 'fine'"],
  ['rename_domain', 'ALTER DOMAIN positive RENAME TO pos'],
  ['rename_sequence', 'ALTER SEQUENCE hub_seq RENAME TO centre_seq'],
  ['rename_trigger', 'ALTER TRIGGER hub_touch ON app.centre RENAME TO centre_touch'],
  ['disable_trigger', 'ALTER TABLE app.centre DISABLE TRIGGER centre_touch'],
  ['rename_policy', 'ALTER POLICY hub_pos ON app.centre RENAME TO centre_pos'],
  ['alter_policy', 'ALTER POLICY centre_pos ON app.centre USING (n > 1)'],
  ['rename_function', 'ALTER FUNCTION touch() RENAME TO touch_row'],
  ['detach', 'ALTER TABLE parted DETACH PARTITION parted_2020'],
  ['attach', "ALTER TABLE parted ATTACH PARTITION parted_2020 FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')"],
  ['rename_partition_key', 'ALTER TABLE parted RENAME COLUMN at TO day'],
  ['no_inherit', 'ALTER TABLE child NO INHERIT parent'],
  ['inherit', 'ALTER TABLE child INHERIT parent'],
  ['rename_parent_column', 'ALTER TABLE parent RENAME COLUMN note TO remark'],
  ['retype_referencing', 'ALTER TABLE spoke ALTER COLUMN code TYPE varchar(50)'],
  ['drop_column', 'ALTER TABLE app.centre DROP COLUMN extra'],
  ['grant_comment', "GRANT SELECT ON app.centre TO PUBLIC; COMMENT ON TABLE app.centre IS 'the centre'"],
  ['unlogged_identity', 'ALTER TABLE loose SET UNLOGGED; ALTER TABLE loose ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY'],
].flatMap(([name, sql]) => [[name, sql] as [string, string], [`after_${name}`, 'SELECT 1'] as [string, string]]);

interface Seen {
  name: string;
  recorded: SchemaChanges;
  described: SchemaDescription;
}

/** `cases` as revision files in a new folder (the caller removes it), discovered. */
async function revisionsOf(cases: ReadonlyArray<[string, string]>): Promise<{ dir: string; revisions: Revision[] }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'belay-record-'));
  for (const [index, [name, sql]] of cases.entries()) {
    const id = String(index + 1).padStart(4, '0');
    await writeFile(path.join(dir, `${id}_${name}.up.sql`), sql);
    await writeFile(path.join(dir, `${id}_${name}.down.sql`), 'SELECT 1');
  }
  return { dir, revisions: await discoverRevisions(dir) };
}

/**
 * The records of a run of `cases` on `client` as a migrate up makes them:
 * each revision sent behind the commit of the one before (nothing looks
 * inside a transaction before it commits, which would keep it from that).
 */
async function recordAhead(client: pg.Client, cases: ReadonlyArray<[string, string]>): Promise<SchemaChanges[]> {
  const { dir, revisions } = await revisionsOf(cases);
  const engine = new MigrationEngine(revisions, client, '00000000-0000-0000-0000-000000000000', { log: () => {} });
  for (const [index, revision] of revisions.entries()) {
    const next = revisions[index + 1];
    await engine.up(revision.name, next && { next: next.name });
  }
  await rm(dir, { recursive: true });
  const { rows } = await client.query<{ schema: SchemaChanges }>('SELECT schema FROM belay.migrations ORDER BY name');
  return rows.map((row) => row.schema);
}

/** Every record of a run of `cases` on `client`, checked against a full description after each revision. */
async function recordRun(client: pg.Client, cases: ReadonlyArray<[string, string]>): Promise<Seen[]> {
  const { dir, revisions } = await revisionsOf(cases);
  const seen: Seen[] = [];
  // inside each revision's transaction, right after its record is written
  const compare = async (on: pg.ClientBase): Promise<void> => {
    const { rows } = await on.query<{ name: string; schema: SchemaChanges }>('SELECT name, schema FROM belay.migrations ORDER BY applied_at DESC, name DESC LIMIT 1');
    seen.push({ name: rows[0]!.name, recorded: rows[0]!.schema, described: await describeSchema(on) });
  };
  const start = await describeSchema(client);
  const engine = new MigrationEngine(revisions, client, '00000000-0000-0000-0000-000000000000', { log: () => {} }, compare);
  for (const revision of revisions) await engine.up(revision.name);

  expect(seen.map((s) => s.name)).toEqual(revisions.map((r) => r.name));
  // the schema as the records say, revision by revision: each object's hash, each changed table's column order
  const state = new Map([...start.objects.keys()].map((key) => [key, hashOf(start, key)]));
  const order = new Map(Object.entries(start.columnOrder));
  for (const { name, recorded, described } of seen) {
    for (const [key, [then, now]] of Object.entries(recorded.changes)) {
      expect({ name, key, then }).toEqual({ name, key, then: state.get(key) ?? null });
      if (now === null) state.delete(key);
      else state.set(key, now);
    }
    for (const [table, [, now]] of Object.entries(recorded.columnOrder)) {
      if (now === null) order.delete(table);
      else order.set(table, now);
    }
    // the digest of the whole schema, kept up to date change by change, is the one a full description makes
    expect({ name, digest: recorded.digest }).toEqual({ name, digest: described.digest });
    const full = new Map([...described.objects.keys()].map((key) => [key, hashOf(described, key)]));
    expect({ name, objects: Object.fromEntries([...state].sort()) }).toEqual({ name, objects: Object.fromEntries([...full].sort()) });
    for (const [table, columns] of Object.entries(described.columnOrder)) expect({ name, table, columns: order.get(table) }).toEqual({ name, table, columns });
  }
  await rm(dir, { recursive: true });
  return seen;
}

/** recordRun of REVISIONS, and what each of them did. */
async function recordAndFold(client: pg.Client): Promise<SchemaChanges[]> {
  const seen = await recordRun(client, REVISIONS);
  // the cases did what they say: names the renames gave, and the end is empty
  const after = (n: number): string[] => [...seen[n]!.described.objects.keys()];
  expect(after(1)).toContain('table public.persons');
  expect(after(1)).toContain('constraint public.persons.people_pkey');
  expect(after(3)).toContain('trigger public.persons.people_touch');
  expect(after(7)).toContain('enum public.status');
  expect(after(12)).toContain('table app.pets');
  expect(after(13)).toContain('table shop.pets');
  expect(seen[14]!.recorded.changes).toEqual({});
  expect(after(15).sort()).toEqual(['extension plpgsql', 'schema public']);
  expect(seen[18]!.described.objects.get('table public.things')!.description).toContain("column born date default '2021-01-01'::date");
  expect(Object.keys(seen[19]!.recorded.changes)).toEqual(['index public.things_id']);
  expect(seen[21]!.described.objects.get('sequence public.counter')!.description).toContain('owned by public.things.id');
  expect(Object.keys(seen[21]!.recorded.changes)).toEqual(['sequence public.counter']);
  expect(Object.keys(seen[22]!.recorded.changes)).toEqual(['sequence public.counter']);
  expect(Object.keys(seen[24]!.recorded.changes).sort()).toEqual([
    'collation public.ci', 'constraint public.pub_t.pub_t_pkey', 'function public.same(integer, integer)', 'index public.pub_t_pkey', 'operator public.===(integer, integer)',
    'publication pub', 'statistics public.pub_ab', 'table public.pub_t', 'text search configuration public.ts',
  ]);
  expect(seen[24]!.described.objects.get('publication pub')!.description).toContain('table public.pub_t');
  expect(seen[25]!.described.objects.get('operator public.===(integer, integer)')!.description).toContain('function public.same_int(integer,integer)');
  expect(seen[25]!.described.objects.get('statistics public.pub_ab')!.description).toContain('ON aa, b FROM public.pub_table');
  expect(seen[26]!.described.objects.get('publication pub')!.description).not.toContain('table public');
  expect(seen[26]!.described.objects.get('index public.pub_t_pkey')!.description).toContain('(clustered) (replica identity)');
  expect(seen[26]!.described.objects.get('table public.pub_table')!.description).toContain('replica identity using index\ncolumn aa text\ncolumn b text storage main');
  return seen.map((s) => s.recorded);
}

const trackerFunctions = async (db: TestDatabase): Promise<string[]> =>
  (await db.query<{ name: string }>("SELECT proname AS name FROM pg_proc WHERE pronamespace = 'belay'::regnamespace AND proname LIKE 'schema\\_changes\\_%' ORDER BY 1")).map((row) => row.name);

describe('the schema recorded per revision', () => {
  const clients: pg.Client[] = [];
  const connect = async (url: string): Promise<pg.Client> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    clients.push(client);
    return client;
  };
  afterAll(async () => Promise.all(clients.map((client) => client.end())));
  /** A connection to `url` with belay's schema made, as the connected role. */
  const connectWithBelay = async (url: string): Promise<pg.Client> => {
    const client = await connect(url);
    await ensureBelaySchema(client);
    return client;
  };
  /** A database whose belay schema another role made: belay's role may use its tables, not create its function there. */
  const lentDatabase = async (): Promise<TestDatabase> => {
    const lent = await freshDatabase();
    const admin = await connectWithBelay(lent.adminUrl);
    await admin.query(`GRANT USAGE ON SCHEMA belay TO ${quoteIdent(TEST_APP_ROLE)}; GRANT ALL ON ALL TABLES IN SCHEMA belay TO ${quoteIdent(TEST_APP_ROLE)}`);
    return lent;
  };
  /** recordRun of `cases` described by belay's function and, where belay may not make it, inline, and as a migrate up sends them (recordAhead): the same records every way; the first run's. */
  const recordBothWays = async (cases: ReadonlyArray<[string, string]>): Promise<Seen[]> => {
    const owned = await freshDatabase();
    const client = await connectWithBelay(owned.url);
    const viaFunction = await recordRun(client, cases);
    expect(await trackerFunctions(owned)).toHaveLength(1);
    const lent = await lentDatabase();
    const inline = await recordRun(await connect(lent.url), cases);
    expect(await trackerFunctions(lent)).toEqual([]);
    expect(inline.map((s) => s.recorded)).toEqual(viaFunction.map((s) => s.recorded));
    // and as a migrate up runs them, each sent behind the previous one's commit
    const ahead = await freshDatabase();
    const aheadClient = await connectWithBelay(ahead.url);
    expect(await recordAhead(aheadClient, cases)).toEqual(viaFunction.map((s) => s.recorded));
    return viaFunction;
  };

  it('is, after every revision of a run, what a full description of the schema says, whether belay may make its function or not', async () => {
    // belay's role owns belay's schema: the changes are described by belay's function, which replaces an older one
    const owned = await freshDatabase();
    const client = await connectWithBelay(owned.url);
    await client.query('CREATE FUNCTION belay.schema_changes_0000000000000000(p_since xid) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$');
    const viaFunction = await recordAndFold(client);
    expect(await trackerFunctions(owned)).toEqual([expect.stringMatching(/^schema_changes_[0-9a-f]{16}$/)]);
    expect((await trackerFunctions(owned))[0]).not.toBe('schema_changes_0000000000000000');

    // belay's schema made by another role, which lets belay's role use its tables but not create in it: the same queries, sent inline
    const lent = await lentDatabase();
    const inline = await recordAndFold(await connect(lent.url));
    expect(await trackerFunctions(lent)).toEqual([]);

    // names, not OIDs: the same revisions record the same changes either way
    expect(inline).toEqual(viaFunction);
  });

  it('follows a rename into every description that names it, the indexes of constraints and composite types too, the same with or without belay\'s function', async () => {
    const viaFunction = await recordBothWays(RENAMES);

    const at = (name: string): Seen => viaFunction.find((s) => s.name.endsWith(`_${name}`))!;
    const description = (name: string, key: string): string | undefined => at(name).described.objects.get(key)?.description;
    const changed = (name: string): string[] => Object.keys(at(name).recorded.changes);
    // the constraints' indexes name the table and the columns: recorded with the rename
    expect(description('rename_table', 'index public.invoices_pkey')).toBe('CREATE UNIQUE INDEX invoices_pkey ON public.bills USING btree (id)');
    expect(changed('rename_table')).toEqual(expect.arrayContaining(['index public.invoices_pkey', 'index public.invoices_code_key', 'index public.invoices_during_excl', 'index public.invoices_amount', 'view public.totals']));
    expect(description('rename_columns', 'index public.invoices_pkey')).toBe('CREATE UNIQUE INDEX invoices_pkey ON public.bills USING btree (bill_id)');
    expect(description('rename_columns', 'index public.invoices_code_key')).toBe('CREATE UNIQUE INDEX invoices_code_key ON public.bills USING btree (ref)');
    expect(changed('rename_columns')).toEqual(
      expect.arrayContaining(['index public.invoices_pkey', 'index public.invoices_code_key', 'constraint public.lines.lines_invoice_fkey', 'constraint public.lines.lines_code_fkey', 'view public.totals']),
    );
    // a partition's key index too, renamed with its partitioned table's column
    expect(description('rename_columns', 'index public.events_2020_pkey')).toBe('CREATE UNIQUE INDEX events_2020_pkey ON public.events_2020 USING btree (event_id, at)');
    expect(changed('rename_range_column')).toEqual(expect.arrayContaining(['index public.invoices_during_excl', 'constraint public.bills.invoices_during_excl']));
    expect(description('rename_type', 'composite type public.pair')).toBe('attribute m public.feeling\nattribute n integer');
    expect(changed('rename_type')).toContain('composite type public.pair');
    expect(changed('rename_sequence')).toEqual(expect.arrayContaining(['sequence public.bill_numbers', 'table public.lines']));
    // the index depends on the function its expression calls; its constraint shows the expression too
    expect(description('rename_function', 'constraint public.bills.apart')).toBe('EXCLUDE USING gist (public.padded(span) WITH &&)');
    expect(changed('rename_function')).toEqual(expect.arrayContaining(['index public.apart', 'constraint public.bills.apart']));
    // every name put back: the schema the first revision left
    expect(at('rename_back').recorded.digest).toBe(at('base').recorded.digest);
  });

  it('describes again what a write to a much-named table, view, type or column changes, and the record stays whole, with or without the function', async () => {
    const viaFunction = await recordBothWays(NAMED);

    const at = (name: string): Seen => viaFunction.find((s) => s.name.endsWith(`_${name}`))!;
    const changed = (name: string): string[] => Object.keys(at(name).recorded.changes).sort();
    // what names the renamed column: its index, its constraints (the foreign key of spoke too), the views, the trigger's WHEN, the SQL function's body
    expect(changed('rename_column')).toEqual(expect.arrayContaining(['index public.hub_code_key', 'index public.hub_lower', 'constraint public.spoke.spoke_code_fkey', 'view public.hub_codes', 'function public.hub_count()']));
    expect(changed('rename_table')).toEqual(expect.arrayContaining(['table public.centre', 'view public.hub_all', 'constraint public.spoke.spoke_hub_fkey', 'policy public.centre.hub_pos']));
    expect(changed('rename_attribute')).toEqual(expect.arrayContaining(['composite type public.pair', 'view public.hub_codes']));
    // a column added, options set: the table alone
    expect(changed('add_column')).toEqual(['table public.hub']);
    expect(changed('table_options')).toEqual(['table public.hub']);
  });

  it("a rehearsal's engine (trackDowns) knows the schema after every up, down and up again as a full description gives it, with or without belay's function", async () => {
    const pairs: Array<[string, string, string]> = [
      [
        'base',
        `CREATE TYPE mood AS ENUM ('sad', 'ok'); CREATE DOMAIN positive AS int CHECK (VALUE > 0);
         CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, mood mood DEFAULT 'ok', n positive);
         CREATE INDEX people_name ON people (lower(name)); CREATE VIEW named AS SELECT id, name FROM people;
         CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
         CREATE TRIGGER people_touch BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION touch();`,
        'DROP VIEW named; DROP TABLE people; DROP FUNCTION touch(); DROP DOMAIN positive; DROP TYPE mood;',
      ],
      ['rename_table', 'ALTER TABLE people RENAME TO persons', 'ALTER TABLE persons RENAME TO people'],
      ['rename_column', 'ALTER TABLE persons RENAME COLUMN name TO full_name', 'ALTER TABLE persons RENAME COLUMN full_name TO name'],
      ['add_column', "ALTER TABLE persons ADD COLUMN born date DEFAULT '2020-01-01'", 'ALTER TABLE persons DROP COLUMN born'],
      ['enum_column', "CREATE TYPE status AS ENUM ('on', 'off'); ALTER TABLE persons ADD COLUMN status status", 'ALTER TABLE persons DROP COLUMN status; DROP TYPE status'],
      ['drop_trigger', 'DROP TRIGGER people_touch ON persons', 'CREATE TRIGGER people_touch BEFORE UPDATE ON persons FOR EACH ROW EXECUTE FUNCTION touch()'],
      ['nullable', 'ALTER TABLE persons ALTER COLUMN full_name DROP NOT NULL', 'ALTER TABLE persons ALTER COLUMN full_name SET NOT NULL'],
      ['new_schema', 'CREATE SCHEMA app; CREATE TABLE app.t (id int PRIMARY KEY)', 'DROP SCHEMA app CASCADE'],
      // a down outside a transaction is not described: the engine then says it does not know
      ['concurrently', '-- belay:no-transaction\nCREATE INDEX CONCURRENTLY people_n ON persons (n)', '-- belay:no-transaction\nDROP INDEX CONCURRENTLY people_n'],
    ];
    const cycle = async (client: pg.Client): Promise<string[]> => {
      const dir = await mkdtemp(path.join(tmpdir(), 'belay-track-downs-'));
      for (const [index, [name, up, down]] of pairs.entries()) {
        const id = String(index + 1).padStart(4, '0');
        await writeFile(path.join(dir, `${id}_${name}.up.sql`), up);
        await writeFile(path.join(dir, `${id}_${name}.down.sql`), down);
      }
      const revisions = await discoverRevisions(dir);
      const engine = new MigrationEngine(revisions, client, '00000000-0000-0000-0000-000000000000', { log: () => {} }, undefined, { trackDowns: true });
      const digests: string[] = [];
      const known = async (step: string): Promise<void> => {
        const full = await describeSchema(client);
        const tracked = engine.describedSchema();
        expect({ step, known: tracked !== undefined }).toEqual({ step, known: step !== '0009_concurrently down' });
        const sorted = (description: SchemaDescription): Array<[string, unknown]> => [...description.objects].sort(([a], [b]) => (a < b ? -1 : 1));
        if (tracked) expect({ step, digest: tracked.digest, objects: sorted(tracked) }).toEqual({ step, digest: full.digest, objects: sorted(full) });
        digests.push(full.digest);
      };
      for (const revision of revisions) {
        await engine.up(revision.name);
        await known(`${revision.name} up`);
        await engine.down(revision.name);
        await known(`${revision.name} down`);
        await engine.up(revision.name);
        await known(`${revision.name} up again`);
      }
      await rm(dir, { recursive: true });
      return digests;
    };
    const owned = await freshDatabase();
    const client = await connectWithBelay(owned.url);
    const viaFunction = await cycle(client);
    expect(await trackerFunctions(owned)).toHaveLength(1);
    const inline = await cycle(await connect((await lentDatabase()).url));
    expect(inline).toEqual(viaFunction);
  });

  it('sees a column widened by a direct update of pg_attribute (a superuser revision; no lock on the table), beside a table made', async () => {
    const db = await freshDatabase();
    const client = await connectWithBelay(db.adminUrl);
    const seen = await recordRun(client, [
      ['base', 'CREATE TABLE names (id int, name varchar(10))'],
      ['widen', "CREATE TABLE extra (id int DEFAULT 1); UPDATE pg_catalog.pg_attribute SET atttypmod = 20 + 4 WHERE attrelid = 'public.names'::regclass AND attname = 'name'"],
    ]);
    expect(Object.keys(seen[1]!.recorded.changes).sort()).toEqual(['table public.extra', 'table public.names']);
    expect(seen[1]!.described.objects.get('table public.names')!.description).toContain('column name character varying(20)');
  });

  it('sees a table renamed by a direct update of pg_class (its row type keeps the old name) in every description that names it', async () => {
    const db = await freshDatabase();
    const client = await connectWithBelay(db.adminUrl);
    const seen = await recordRun(client, [
      ['base', 'CREATE TABLE names (id int PRIMARY KEY); CREATE VIEW ids AS SELECT id FROM names'],
      ['after_base', 'SELECT 1'],
      ['rename', "UPDATE pg_catalog.pg_class SET relname = 'labels' WHERE oid = 'public.names'::regclass"],
    ]);
    expect(Object.keys(seen[2]!.recorded.changes).sort()).toEqual(expect.arrayContaining(['table public.labels', 'view public.ids', 'index public.names_pkey']));
  });

  it('describes again, after a column added to a table that many objects name, that table alone; after a column renamed, what names that column, with or without the function', async () => {
    const db = await freshDatabase();
    const client = await connectWithBelay(db.url);
    const via = await ensureTrackerFunction(client);
    expect(via).toBeDefined();
    await client.query(`CREATE TABLE hub (id int PRIMARY KEY, code text UNIQUE, n int CHECK (n > 0));
      CREATE INDEX hub_n ON hub (n);
      CREATE TABLE spoke (hub int REFERENCES hub (id), code text REFERENCES hub (code));
      CREATE VIEW hub_codes AS SELECT code FROM hub;
      CREATE VIEW hub_ns AS SELECT id, n FROM hub`);
    // the keys found for `change`, in a transaction rolled back after, by the function or by the inline query, as names
    const keysFor = async (change: string, inline: boolean): Promise<string[]> => {
      // every write before this one flushed to the shared statistics: the tests below read this transaction's alone
      await client.query('SELECT pg_stat_force_next_flush()');
      // since an xid of its own, not the horizon: a transaction of another test left open would take the horizon back
      // before this test's CREATE TABLEs, whose rows would then be found too (described again, which is right, but not what is asked here)
      const { rows } = await client.query<{ since: string; floor: string }>(`SELECT (txid_current() % 4294967296)::text AS since, ${OID_FLOOR} AS floor`);
      const { since, floor } = rows[0]!;
      await client.query('BEGIN');
      try {
        await client.query(change);
        const found = inline
          ? await client.query<{ keys: string[] }>(`SELECT keys FROM (${changedKeysQuery(pg.escapeLiteral(since) + '::xid', true)}) c`)
          : await client.query<{ keys: string[] }>(`SELECT ${via}($1::xid, $2::oid) -> 'keys' AS keys`, [since, floor]);
        const keys = found.rows[0]?.keys ?? [];
        const named = await client.query<{ name: string }>(
          `SELECT CASE left(k, 1) WHEN 'c' THEN substr(k, 2)::oid::regclass::text WHEN 'o' THEN (SELECT 'constraint ' || conname FROM pg_constraint WHERE oid = substr(k, 2)::oid)
                  WHEN 't' THEN (SELECT 'trigger of ' || coalesce(co.conname, t.tgname) FROM pg_trigger t LEFT JOIN pg_constraint co ON co.oid = t.tgconstraint WHERE t.oid = substr(k, 2)::oid) ELSE k END AS name
             FROM unnest($1::text[]) k`,
          [keys],
        );
        return [...new Set(named.rows.map((row) => row.name))].sort();
      } finally {
        await client.query('ROLLBACK');
      }
    };
    for (const inline of [false, true]) {
      // the indexes, constraints (the foreign keys of spoke too) and views that name hub's columns are as they were
      expect({ inline, keys: await keysFor('ALTER TABLE hub ADD COLUMN born date', inline) }).toEqual({ inline, keys: ['hub'] });
      expect({ inline, keys: await keysFor("ALTER TABLE hub ADD COLUMN note text DEFAULT 'none'; ALTER TABLE hub ENABLE ROW LEVEL SECURITY", inline) }).toEqual({ inline, keys: ['hub'] });
      expect({ inline, keys: await keysFor('ALTER TABLE hub RENAME COLUMN code TO ref', inline) }).toEqual({
        inline,
        // (a foreign key's triggers are its internal parts)
        keys: ['constraint hub_code_key', 'constraint spoke_code_fkey', 'hub', 'hub_code_key', 'hub_codes', 'trigger of spoke_code_fkey'],
      });
      // a rename of the table is in every description that names it
      expect({ inline, keys: await keysFor('ALTER TABLE hub RENAME TO centre', inline) }).toEqual({
        inline,
        keys: expect.arrayContaining(['centre', 'hub_pkey', 'constraint hub_pkey', 'constraint spoke_hub_fkey', 'constraint hub_n_check', 'hub_n', 'hub_codes', 'hub_ns']),
      });
    }
  });

  it("stays whole across a revision that outlasts the statistics' one-second flush", async () => {
    const db = await freshDatabase();
    const client = await connectWithBelay(db.url);
    const seen = await recordRun(client, [
      ['base', "CREATE TABLE a (id int DEFAULT 0, note text DEFAULT ''); CREATE TABLE b (x int, y int)"],
      // over a second: the session's statistics are flushed when it next goes idle (at most once a second),
      // whether or not belay's function asked for it
      ['wait', 'SELECT pg_sleep(1.2)'],
      // only pg_attribute rows updated, of a table from before, fewer than base updated: a tracker that took
      // earlier pending counts off instead of asking for a flush, and missed a flush, would not see it
      // (a prototype that did so without its check of the shared counts failed here: docs/performance.md)
      ['rename', 'ALTER TABLE b RENAME COLUMN x TO z'],
      ['not_null', 'ALTER TABLE b ALTER COLUMN y SET NOT NULL'],
    ]);
    expect(seen.map((s) => Object.keys(s.recorded.changes))).toEqual([['table public.a', 'table public.b'], [], ['table public.b'], ['table public.b']]);
    expect(seen[3]!.described.objects.get('table public.b')!.description).toContain('column y integer not null');
    expect(seen[3]!.described.objects.get('table public.b')!.description).toContain('column z integer');
  });

  it('stays whole when new objects get OIDs from before the last description (the OID counter wrapped around)', async () => {
    const server = await startTempCluster({ prefix: 'belay-oids-', superuser: 'postgres', tcp: false, pgBin: process.env.PG_BIN, path: process.env.PATH });
    try {
      const url = `postgresql://postgres@/postgres?host=${encodeURIComponent(server.spec.socketDir)}&port=${server.spec.port}`;
      const before = new pg.Client({ connectionString: url });
      await before.connect();
      await ensureBelaySchema(before);
      // high OIDs in belay's own schema (never described), then the counter set back below them, as after a wraparound
      await before.query(`DO $$ BEGIN FOR i IN 1..40 LOOP EXECUTE format('CREATE TABLE belay.filler_%s (id int)', i); END LOOP; END $$`);
      await before.end();
      await stopCluster(server.spec);
      const user = serverUser();
      await promisify(execFile)(path.join(server.spec.binDir, 'pg_resetwal'), ['-o', '16384', '-D', server.spec.dataDir], { ...(user ? { uid: user.uid, gid: user.gid } : {}), timeout: 60_000 });
      await startCluster(server.spec, path.join(server.root, 'server.log'));
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const viaFunction = await recordAndFold(client);
        expect(viaFunction).toHaveLength(REVISIONS.length);
        // what was made after the reset (belay's function, during the run) has an OID below the fillers'
        const { rows } = await client.query<{ below: boolean }>(
          "SELECT (SELECT oid FROM pg_proc WHERE proname LIKE 'schema\\_changes\\_%') < (SELECT max(oid) FROM pg_class WHERE relname LIKE 'filler\\_%') AS below",
        );
        expect(rows[0]!.below).toBe(true);
      } finally {
        await client.end();
      }
    } finally {
      await server.remove();
    }
  }, 120_000);
});
