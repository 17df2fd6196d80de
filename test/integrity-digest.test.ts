import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeSchema, describeSchemaDiff, diffSchemas, schemaChanges, schemasDiffer, SchemaTracker } from '../src/integrity/schema-digest.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';

let db: TestDatabase;
let client: pg.Client;

const SCHEMA = `
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, mood mood DEFAULT 'ok', seen timestamptz DEFAULT 'now', n positive);
CREATE INDEX people_name ON people (lower(name));
CREATE TABLE pets (id int PRIMARY KEY, owner int);
ALTER TABLE pets ADD CONSTRAINT pets_owner_fk FOREIGN KEY (owner) REFERENCES people (id) NOT VALID;
CREATE VIEW people_now AS SELECT id, 'now'::timestamptz AS at FROM people;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER people_touch BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION touch();
CREATE SCHEMA app;
CREATE SEQUENCE app.tickets INCREMENT 5;
`;
const DROP = `
DROP SCHEMA app CASCADE; DROP VIEW people_now; DROP TABLE pets; DROP TABLE people; DROP FUNCTION touch(); DROP DOMAIN positive; DROP TYPE mood; DROP EXTENSION pgcrypto;
`;

describe('schema digest', () => {
  beforeAll(async () => {
    db = await freshDatabase();
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
    // belay's own schema is never part of it
    await client.query('CREATE SCHEMA belay; CREATE TABLE belay.migrations (name text)');
  });
  afterAll(async () => client?.end());

  it('describes every kind of object by name, extension members and belay\'s schema left out', async () => {
    await client.query(SCHEMA);
    const schema = await describeSchema(client);
    const keys = [...schema.objects.keys()];
    for (const key of [
      'extension pgcrypto',
      'enum public.mood',
      'domain public.positive',
      'domain constraint public.positive.positive_check',
      'table public.people',
      'index public.people_name',
      'constraint public.pets.pets_owner_fk',
      'view public.people_now',
      'function public.touch()',
      'trigger public.people.people_touch',
      'schema app',
      'sequence app.tickets',
      'sequence public.people_id_seq',
    ]) {
      expect(keys).toContain(key);
    }
    expect(keys.some((key) => key.includes('belay'))).toBe(false);
    expect(keys.some((key) => key.includes('digest('))).toBe(false);
    expect(schema.objects.get('constraint public.pets.pets_owner_fk')!.description).toBe('FOREIGN KEY (owner) REFERENCES public.people(id) NOT VALID');
    expect(schema.columnOrder['public.people']).toEqual(['id', 'name', 'mood', 'seen', 'n']);
    await client.query(DROP);
  });

  it('is the same for the same schema made again at another moment, whatever the search_path; differs object by object otherwise', async () => {
    await client.query(SCHEMA);
    const first = await describeSchema(client);
    await client.query(DROP);
    await client.query('SELECT pg_sleep(0.01)');
    await client.query(SCHEMA);
    await client.query('SET search_path = app, public');
    const again = await describeSchema(client);
    await client.query('RESET search_path');
    expect(again.digest).toBe(first.digest);
    expect(schemasDiffer(diffSchemas(first, again))).toBe(false);

    await client.query("DROP INDEX people_name; ALTER TYPE mood ADD VALUE 'great'; CREATE FUNCTION left_behind() RETURNS int LANGUAGE sql AS 'SELECT 1'; DROP TRIGGER people_touch ON people");
    const changed = await describeSchema(client);
    const diff = diffSchemas(first, changed);
    expect(diff.added).toEqual(['function public.left_behind()']);
    expect(diff.removed).toEqual(['index public.people_name', 'trigger public.people.people_touch']);
    expect(diff.changed.map((c) => c.key)).toEqual(['enum public.mood']);
    expect(describeSchemaDiff(diff, changed, first)).toContain("~ enum public.mood\n  - labels 'sad', 'ok', 'happy'\n  + labels 'sad', 'ok', 'happy', 'great'");

    // the record of changes (what belay.migrations keeps per revision) names the same objects, with hashes before and after
    const recorded = JSON.parse(JSON.stringify(schemaChanges(first, changed))) as ReturnType<typeof schemaChanges>;
    expect(Object.keys(recorded.changes).sort()).toEqual([...diff.added, ...diff.removed, 'enum public.mood'].sort());
    expect(recorded.changes['function public.left_behind()']).toEqual([null, expect.stringMatching(/^[0-9a-f]{32}$/)]);
    expect(recorded.changes['index public.people_name']).toEqual([expect.stringMatching(/^[0-9a-f]{32}$/), null]);
    expect(schemaChanges(first, first)).toEqual({ format: 2, digest: first.digest, changes: {}, columnOrder: {} });
    await client.query('DROP FUNCTION left_behind()');
    await client.query(DROP);
  });

  it('reports column order apart, as a warning, not as a changed table', async () => {
    await client.query('CREATE TABLE t (id int, a text, b text)');
    const before = await describeSchema(client);
    await client.query('ALTER TABLE t DROP COLUMN a; ALTER TABLE t ADD COLUMN a text');
    const after = await describeSchema(client);
    const diff = diffSchemas(before, after);
    expect(schemasDiffer(diff)).toBe(false);
    expect(diff.columnOrder).toEqual([{ table: 'public.t', before: ['id', 'a', 'b'], after: ['id', 'b', 'a'] }]);
    await client.query('DROP TABLE t');
  });

  it('runs inside a transaction the caller holds (a revision\'s, before it commits) and gives its search_path back', async () => {
    await client.query('BEGIN');
    await client.query('SET LOCAL search_path = app, public');
    await client.query('CREATE TABLE inside (id int)');
    const schema = await describeSchema(client);
    expect([...schema.objects.keys()]).toContain('table public.inside');
    expect((await new SchemaTracker().describe(client)).digest).toBe(schema.digest);
    expect((await client.query<{ search_path: string }>('SHOW search_path')).rows[0]!.search_path).toBe('app, public');
    await client.query('ROLLBACK');
  });

  it('the tracker describes only what changed and agrees with a full description', async () => {
    const tracker = new SchemaTracker();
    await client.query(SCHEMA);
    expect((await tracker.describe(client)).digest).toBe((await describeSchema(client)).digest);
    await client.query("ALTER TABLE people ADD COLUMN email text NOT NULL DEFAULT ''; ALTER TYPE mood RENAME VALUE 'ok' TO 'fine'; CREATE OR REPLACE VIEW people_now AS SELECT id, now() AS at FROM people");
    const tracked = await tracker.describe(client);
    const full = await describeSchema(client);
    expect(tracked.digest).toBe(full.digest);
    expect(tracked.objects.get('table public.people')!.description).toContain("column email text not null default ''::text");
    await client.query(DROP);
  });
});
