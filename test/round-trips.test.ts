import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

// BEGIN travels in one simple query with a revision's first statement, and the
// journal's rows are queued on the control connection: neither may show.
describe('fewer round trips, the same record', () => {
  it('an error in the first statement names its line in the file, not one shifted by the BEGIN sent with it', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_t1.up.sql': 'CREATE TABLE t1 (id int);\n',
      '0001_t1.down.sql': 'DROP TABLE t1;\n',
      // the unknown column ends its line: a position off by the BEGIN's length lands on the next line
      '0002_t2.up.sql': '-- a first statement that fails\nINSERT INTO t1 (id, nope\n)\n  VALUES (1, 2);\n',
      '0002_t2.down.sql': 'SELECT 1;\n',
    });
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(10);
    expect(jsonResult(run)).toMatchObject({ failure: { revision: '0002_t2', file: '0002_t2.up.sql', line: 2, sqlstate: '42703' } });
    expect(await db.query('SELECT name FROM belay.migrations')).toEqual([]);
    expect(await db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).toEqual([]);
  });

  it('a last statement ending in a -- comment without a newline runs, and its record goes with it', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_t1.up.sql': 'CREATE TABLE t1 (id int);\n',
      '0001_t1.down.sql': 'DROP TABLE t1;\n',
      '0002_t2.up.sql': 'CREATE TABLE t2 (id int); -- the record travels after this statement',
      '0002_t2.down.sql': 'DROP TABLE t2 -- and the down commits after this one',
    });
    const up = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up']);
    expect(up.code, up.stderr).toBe(0);
    const [record] = await db.query<{ changed: string[] }>("SELECT ARRAY(SELECT jsonb_object_keys(schema->'changes') ORDER BY 1) AS changed FROM belay.migrations WHERE name = '0002_t2'");
    expect(record?.changed).toContain('table public.t2');
    const down = await belay([...baseArgs(project, db.url), '--json', '--yes', 'rollback', '--no-backup', '--to', '0001_t1']);
    expect(down.code, down.stderr).toBe(0);
    expect(await db.query("SELECT to_regclass('public.t2')::text AS t2")).toEqual([{ t2: null }]);
    expect(await db.query('SELECT name FROM belay.migrations')).toEqual([{ name: '0001_t1' }]);
  });

  it("a down whose COMMIT fails (a deferred foreign key) is told at its COMMIT, and its revision stays applied with its data", async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_base.up.sql':
        'CREATE TABLE parent (id int PRIMARY KEY);\nCREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);\nINSERT INTO parent VALUES (1);\nINSERT INTO child VALUES (1, 1);',
      '0001_base.down.sql': 'DROP TABLE child, parent;',
      '0002_t2.up.sql': 'CREATE TABLE t2 (id int);',
      // the orphaned child is found only when the transaction commits
      '0002_t2.down.sql': 'DROP TABLE t2;\nDELETE FROM parent;',
    });
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...baseArgs(project, db.url), '--json', '--yes', 'rollback', '--no-backup', '--to', '0001_base']);
    expect(run.code, run.stderr).toBe(12);
    const result = jsonResult(run) as { message: string };
    expect(result.message).toMatch(/the down of 0002_t2 failed: .*violates foreign key constraint/);
    expect(result.message).toMatch(/statement: COMMIT/);
    expect(result.message).not.toMatch(/0002_t2\.down\.sql:\d/);
    expect(await db.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_base' }, { name: '0002_t2' }]);
    expect(await db.query("SELECT to_regclass('public.t2')::text AS t2, (SELECT count(*)::int FROM parent) AS parents")).toEqual([{ t2: 't2', parents: 1 }]);
  });

  it('a file goes in one query, and a failure still names its statement and line: at run time, by position, by syntax', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_t1.up.sql': 'CREATE TABLE t1 (id int PRIMARY KEY, n int);\n',
      '0001_t1.down.sql': 'DROP TABLE t1;\n',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const failures: Record<string, { file: string; line: number; statement: RegExp }> = {
      // no position: the statements that completed before it say which one failed
      'INSERT INTO t1 VALUES (1, 1);\nINSERT INTO t1 VALUES (2, 2);\n\n-- a comment between\nINSERT INTO t1 VALUES (1, 3);\nINSERT INTO t1 VALUES (4, 4);\n': { file: 'x', line: 5, statement: /VALUES \(1, 3\)/ },
      // a position, at run time
      'INSERT INTO t1 VALUES (1, 1);\nUPDATE t1\n   SET nope = 2;\nINSERT INTO t1 VALUES (4, 4);\n': { file: 'x', line: 3, statement: /SET nope/ },
      // a syntax error: nothing of the query ran
      'INSERT INTO t1 VALUES (1, 1);\nINSERT INTO t1 VALUES (2, 2);\nINSERT INTO t1 VALUES (3 3);\n': { file: 'x', line: 3, statement: /VALUES \(3 3\)/ },
    };
    let n = 2;
    for (const [up, expected] of Object.entries(failures)) {
      const name = `${String(n).padStart(4, '0')}_bad${n}`;
      await writeFile(join(project.migrations, `${name}.up.sql`), up);
      await writeFile(join(project.migrations, `${name}.down.sql`), 'SELECT 1;\n');
      const run = await belay([...args, '--json', 'migrate', 'up']);
      expect(run.code, run.stderr).toBe(10);
      const failure = (jsonResult(run) as { failure: { file: string; line: number; statement: string } }).failure;
      expect(failure).toMatchObject({ file: `${name}.up.sql`, line: expected.line });
      expect(failure.statement).toMatch(expected.statement);
      expect(await db.query('SELECT count(*)::int AS n FROM t1')).toEqual([{ n: 0 }]);
      await rm(join(project.migrations, `${name}.up.sql`));
      await rm(join(project.migrations, `${name}.down.sql`));
      n += 1;
    }
  });

  it('a file of more statements than one query takes runs whole, and a failure in a later query names its line', async () => {
    const db = await freshDatabase();
    const inserts = (count: number, bad?: number): string =>
      `CREATE TABLE many (id int PRIMARY KEY);\n${Array.from({ length: count }, (_, i) => `INSERT INTO many VALUES (${i + 1 === bad ? 1 : i + 1});`).join('\n')}\n`;
    const project = await makeProject({ '0001_many.up.sql': inserts(250), '0001_many.down.sql': 'DROP TABLE many;\n' });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    expect(await db.query('SELECT count(*)::int AS n FROM many')).toEqual([{ n: 250 }]);
    await writeFile(join(project.migrations, '0002_bad.up.sql'), inserts(230, 181).replace('CREATE TABLE many', 'CREATE TABLE more').replaceAll('INTO many', 'INTO more'));
    await writeFile(join(project.migrations, '0002_bad.down.sql'), 'DROP TABLE more;\n');
    const run = await belay([...args, '--json', 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(10);
    // the CREATE on line 1, INSERT i on line i + 1: the duplicate is the 181st
    expect(jsonResult(run)).toMatchObject({ failure: { file: '0002_bad.up.sql', line: 182, sqlstate: '23505' } });
    expect(await db.query("SELECT to_regclass('public.more')::text AS more")).toEqual([{ more: null }]);
  });

  it('every journal line of a run is in belay.steps once it ends, in order, with the run settled', async () => {
    const db = await freshDatabase();
    const files: Record<string, string> = {};
    for (let i = 1; i <= 12; i++) {
      const n = String(i).padStart(4, '0');
      files[`${n}_t${i}.up.sql`] = `CREATE TABLE t${i} (id int);\n`;
      files[`${n}_t${i}.down.sql`] = `DROP TABLE t${i};\n`;
    }
    const project = await makeProject(files);
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(0);
    const { runId } = jsonResult(run) as { runId: string };
    const steps = await db.query<{ seq: number; step: string; event: string; revision: string | null }>(
      'SELECT seq, step, event, revision FROM belay.steps WHERE run_id = $1 ORDER BY seq',
      [runId],
    );
    expect(steps.map((s) => s.seq)).toEqual(steps.map((_, i) => i + 1));
    const applies = steps.filter((s) => s.step === 'apply');
    expect(applies).toHaveLength(24);
    expect(applies.filter((s) => s.event === 'end').map((s) => s.revision)).toEqual(Object.keys(files).filter((f) => f.endsWith('.up.sql')).map((f) => f.replace('.up.sql', '')));
    expect(await db.query('SELECT status, last_step FROM belay.runs WHERE id = $1', [runId])).toEqual([{ status: 'ok', last_step: expect.any(String) }]);
  });
});
