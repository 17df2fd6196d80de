import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureBelaySchema } from '../src/db/belay-schema.js';
import { discoverRevisions } from '../src/migrations/discover.js';
import { MigrationEngine } from '../src/migrations/engine.js';
import { belay, jsonResult } from './support/cli.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

// A migrate up sends each revision right behind the commit of the one before
// (MigrationEngine.up with `next`): what was sent and not asked for must leave
// nothing, and nothing may be sent behind a commit that failed. A sequence
// outside the revisions tells whether a revision's statements ran at all:
// nextval is not rolled back with its transaction.
const PROBE = 'CREATE SEQUENCE probe; GRANT USAGE, SELECT ON SEQUENCE probe TO PUBLIC';
const probeCalls = async (db: TestDatabase): Promise<number> => {
  const [row] = await db.query<{ calls: number }>('SELECT CASE WHEN is_called THEN last_value ELSE 0 END::int AS calls FROM probe');
  return row!.calls;
};

/** Two revisions; the second leaves its session changed in ways a rollback does not undo and, with `failFirst`, fails its first run after that. */
const revisions = (failFirst = false): Record<string, string> => ({
  '0001_a.up.sql': 'CREATE TABLE a (id int);',
  '0001_a.down.sql': 'DROP TABLE a;',
  '0002_b.up.sql': [
    'CREATE TABLE b (id int);',
    'PREPARE b_count AS SELECT count(*) FROM b;',
    "SELECT set_config('search_path', 'nowhere', false);",
    failFirst ? "SELECT 1 / (nextval('public.probe') - 1);" : "SELECT nextval('public.probe');",
  ].join('\n'),
  '0002_b.down.sql': 'DROP TABLE b;',
});

describe('a revision sent behind the previous commit', () => {
  const clients: pg.Client[] = [];
  afterAll(async () => Promise.all(clients.map((client) => client.end())));
  const engineOn = async (db: TestDatabase, files: Record<string, string>): Promise<{ engine: MigrationEngine; client: pg.Client }> => {
    const project = await makeProject(files);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    clients.push(client);
    await ensureBelaySchema(client);
    const revisions = await discoverRevisions(project.migrations);
    return { engine: new MigrationEngine(revisions, client, '00000000-0000-4000-8000-000000000003', { log: () => {} }), client };
  };
  const applied = async (db: TestDatabase): Promise<string[]> => (await db.query<{ name: string }>('SELECT name FROM belay.migrations ORDER BY name')).map((row) => row.name);

  it('and not asked for is rolled back with its session undone, even when it failed; asked for later, it runs again from the start', async () => {
    const db = await freshDatabase();
    await db.query(PROBE);
    // it fails after its PREPARE: the session reset its last round trip carries never ran
    const { engine, client } = await engineOn(db, revisions(true));
    await engine.up('0001_a', { next: '0002_b' });
    await engine.settle();
    // it ran, and nothing of it stayed: no table, no record, no open transaction, the session as it was
    expect(await probeCalls(db)).toBe(1);
    expect(await applied(db)).toEqual(['0001_a']);
    expect(await db.query("SELECT to_regclass('public.b')::text AS b")).toEqual([{ b: null }]);
    expect(client.getTransactionStatus()).toBe('I');
    expect((await client.query<{ path: string; prepared: number }>('SELECT current_setting($1) AS path, (SELECT count(*)::int FROM pg_prepared_statements) AS prepared', ['search_path'])).rows).toEqual([
      { path: '"$user", public', prepared: 0 },
    ]);
    await engine.up('0002_b');
    expect(await probeCalls(db)).toBe(2);
    expect(await applied(db)).toEqual(['0001_a', '0002_b']);
  });

  it('and asked for is the one that commits: it ran once, its record is its own, and the session is reset after it', async () => {
    const db = await freshDatabase();
    await db.query(PROBE);
    const { engine, client } = await engineOn(db, revisions());
    await engine.up('0001_a', { next: '0002_b' });
    await engine.up('0002_b');
    expect(await probeCalls(db)).toBe(1);
    const records = await db.query<{ name: string; changed: string[] }>("SELECT name, ARRAY(SELECT jsonb_object_keys(schema->'changes') ORDER BY 1) AS changed FROM belay.migrations ORDER BY name");
    expect(records).toEqual([
      { name: '0001_a', changed: ['table public.a'] },
      { name: '0002_b', changed: ['table public.b'] },
    ]);
    expect((await client.query<{ path: string }>('SELECT current_setting($1) AS path', ['search_path'])).rows).toEqual([{ path: '"$user", public' }]);
  });

  it('is not sent when the caller is about to stop', async () => {
    const db = await freshDatabase();
    await db.query(PROBE);
    const { engine } = await engineOn(db, revisions());
    await engine.up('0001_a', { next: '0002_b', stopping: () => true });
    await engine.settle();
    expect(await probeCalls(db)).toBe(0);
    expect(await applied(db)).toEqual(['0001_a']);
  });

  it('is not sent behind a COMMIT that failed: the up fails, the next revision never ran, and the run rolls back', async () => {
    const db = await freshDatabase();
    await db.query(PROBE);
    const project = await makeProject({
      '0001_base.up.sql': 'CREATE TABLE parent (id int PRIMARY KEY);\nCREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);',
      '0001_base.down.sql': 'DROP TABLE child, parent;',
      // an orphan: found only when the transaction commits
      '0002_orphan.up.sql': 'INSERT INTO child VALUES (1, 99);',
      '0002_orphan.down.sql': 'DELETE FROM child;',
      '0003_next.up.sql': "SELECT nextval('probe');\nCREATE TABLE t3 (id int);",
      '0003_next.down.sql': 'DROP TABLE t3;',
    });
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(10);
    const result = jsonResult(run) as { message: string };
    expect(result.message).toMatch(/0002_orphan.*violates foreign key constraint/);
    expect(await probeCalls(db)).toBe(0);
    expect(await applied(db)).toEqual([]);
    expect(await db.query("SELECT to_regclass('public.parent')::text AS parent, to_regclass('public.t3')::text AS t3")).toEqual([{ parent: null, t3: null }]);
  });
});
