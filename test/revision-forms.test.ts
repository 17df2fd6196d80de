import { fileURLToPath } from 'node:url';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

async function argsFor(set: string, url: string): Promise<string[]> {
  return ['--database-url', url, '--migrations', fixture(set), '--backups', await mkdtemp(join(tmpdir(), 'belay-backups-'))];
}

describe('revision forms and their failure paths', () => {
  it('TypeScript and .mjs modules apply, verify and revert', async () => {
    const db = await freshDatabase();
    const args = await argsFor('ts-module', db.url);
    const up = await belay([...args, '--json', 'migrate', 'up']);
    expect(up.code, up.stderr).toBe(0);
    expect((await db.query('SELECT body FROM fx_notes'))).toEqual([{ body: 'hello' }]);
    const down = await belay([...args, '--yes', 'rollback', '--to', '0001']);
    expect(down.code, down.stderr).toBe(0);
    expect((await db.query('SELECT name FROM belay.migrations')).map((r) => r.name)).toEqual(['0001_notes']);
  });

  it('-- belay:no-transaction runs CREATE INDEX CONCURRENTLY outside a transaction, and plan says so', async () => {
    const db = await freshDatabase();
    const args = await argsFor('no-transaction', db.url);
    const plan = await belay([...args, 'plan']);
    expect(plan.stdout).toMatch(/apply  0002_events_kind_index {2}\[no transaction\]/);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    expect(await db.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'fx_events_kind_idx'::regclass")).toEqual([{ indisvalid: true }]);
  });

  it('a revision without a down needs --allow-irreversible, and blocks rollback past it', async () => {
    const db = await freshDatabase();
    const args = await argsFor('no-down', db.url);
    const refused = await belay([...args, 'migrate', 'up']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('revisions without a down: 0002_irreversible');
    expect(await db.query("SELECT to_regclass('fx_first') AS t")).toEqual([{ t: null }]);
    expect((await belay([...args, 'migrate', 'up', '--allow-irreversible', '--with-backup'])).code).toBe(0);
    const rollback = await belay([...args, '--yes', 'rollback', '--to', '0001']);
    expect(rollback.code).toBe(4);
    expect(rollback.stderr).toContain('0002_irreversible');
    expect(await db.query("SELECT to_regclass('fx_second') IS NOT NULL AS t")).toEqual([{ t: true }]);
  });

  it('rollback whose down deletes rows it must keep: the snapshot is restored (exit 11)', async () => {
    const db = await freshDatabase();
    const args = await argsFor('lossy', db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const plan = await belay([...args, 'plan', '--to', '0001']);
    expect(plan.stdout).toContain('rows deleted from tables that stay (public.fx_people: 10 row(s) now, by 0003_archive_flag): integrity counts lost rows as corruption');
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(11);
    expect(jsonResult(run).message).toMatch(/fx_people had 10 rows, now 5/);
    expect(await db.query('SELECT count(*)::int AS n FROM fx_people')).toEqual([{ n: 10 }]);
    expect((await db.query('SELECT max(name) AS m FROM belay.migrations'))[0]?.m).toBe('0003_archive_flag');
  });

  it('rollback to a revision that is not applied exits 2; to the current one, 0 (already there)', async () => {
    const db = await freshDatabase();
    const args = await argsFor('good', db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0002'])).code).toBe(0);
    const above = await belay([...args, '--yes', 'rollback', '--to', '0003']);
    expect(above.code).toBe(2);
    expect(above.stderr).toContain('is not applied');
    const current = await belay([...args, '--yes', 'rollback', '--to', '0002']);
    expect(current.code, current.stderr).toBe(0);
    expect(current.stdout).toMatch(/already at 0002_\w+; nothing to roll back/);
  });

  it('fails midway: the statement and line are named, the run is rolled back (exit 10)', async () => {
    const db = await freshDatabase();
    const args = await argsFor('fails-midway', db.url);
    const run = await belay([...args, '--json', 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(10);
    const result = jsonResult(run) as { failure: { file: string; line: number; statement: string } };
    expect(result.failure.file).toBe('0003_broken.up.sql');
    expect(result.failure.statement).toContain('weight');
    expect(await db.query("SELECT count(*)::int AS n FROM belay.migrations")).toEqual([{ n: 0 }]);
  });

  it('BEGIN … COMMIT-wrapped files (Sqitch, golang-migrate) stay atomic: a failing one rolls the run back whole', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_t1.up.sql': 'BEGIN;\nCREATE TABLE t1 (id int);\nCOMMIT;\n',
      '0001_t1.down.sql': 'BEGIN;\nDROP TABLE t1;\nCOMMIT;\n',
      '0002_t2.up.sql': 'BEGIN;\nCREATE TABLE t2 (id int);\nSELECT 1/0;\nCOMMIT;\n',
      '0002_t2.down.sql': 'BEGIN;\nDROP TABLE t2;\nCOMMIT;\n',
    });
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(10);
    expect(jsonResult(run)).toMatchObject({ failure: { revision: '0002_t2', line: 3, sqlstate: '22012' } });
    expect(await db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).toEqual([]);
    expect(await db.query('SELECT name FROM belay.migrations')).toEqual([]);
  });

  it('a COMMIT or a psql command inside a revision is refused before anything changes (exit 4)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_t1.up.sql': 'CREATE TABLE t1 (id int);\nCOMMIT;\nCREATE TABLE t1b (id int);\n',
      '0001_t1.down.sql': 'DROP TABLE t1b;\nDROP TABLE t1;\n',
      '0002_copy.up.sql': 'CREATE TABLE t2 (id int);\nCOPY t2 FROM stdin;\n1\n\\.\n',
      '0002_copy.down.sql': 'DROP TABLE t2;\n',
    });
    const run = await belay([...baseArgs(project, db.url), 'migrate', 'up']);
    expect(run.code).toBe(4);
    expect(run.stderr).toContain('0001_t1.up.sql line 2: `COMMIT` inside a revision');
    expect(run.stderr).toContain('0002_copy.up.sql line 2: `COPY t2 FROM stdin` is followed by data (lines 3–4) that only psql can send');
    expect(await db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).toEqual([]);
  });
});
