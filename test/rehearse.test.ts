import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { belay, cleanEnv, jsonResult, startBelay } from './support/cli.js';
import { adminQuery, freshDatabase } from './support/pg.js';
import { makeProject } from './support/project.js';

const BASE = {
  '0001_people.up.sql': "CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, nickname text);",
  '0001_people.down.sql': 'DROP TABLE people;',
};
const SEED = "INSERT INTO people (id, name, nickname) SELECT g, 'person ' || g, 'nick ' || g FROM generate_series(1, 500) g;";

async function leftovers(): Promise<{ dirs: string[]; databases: string[] }> {
  const dirs = (await readdir(tmpdir())).filter((name) => name.startsWith('belay-rehearse-'));
  const rows = await adminQuery('postgres', "SELECT datname FROM pg_database WHERE datname LIKE 'belay_rehearse_%'");
  return { dirs, databases: rows.map((r) => String(r.datname)) };
}

async function rehearse(files: Record<string, string>, extra: string[] = [], ephemeral = false) {
  const db = await freshDatabase();
  const project = await makeProject(files);
  const seed = join(project.dir, 'seed.sql');
  await import('node:fs/promises').then((fs) => fs.writeFile(seed, SEED));
  const junit = join(project.dir, 'report.xml');
  const markdown = join(project.dir, 'report.md');
  const connection = ephemeral ? [] : ['--database-url', db.url];
  const run = await belay([...connection, '--migrations', project.migrations, '--backups', project.backups, '--json', 'rehearse', '--from', '0001', '--seed', seed, '--junit', junit, '--markdown', markdown, ...extra], { cwd: project.dir });
  return { run, junit, markdown, report: run.stdout ? (jsonResult(run) as { ok: boolean; cases: Array<{ revision: string; direction: string; ok: boolean; message?: string; diff?: string; warnings: string[]; locks: Array<{ table: string; mode: string; heldMs: number }> }> }) : undefined };
}

describe('belay rehearse', () => {
  it('a good set passes on a throwaway database of the connected server; the JUnit report parses', async () => {
    const before = await leftovers();
    const { run, junit, markdown } = await rehearse({
      ...BASE,
      '0002_email.up.sql': 'ALTER TABLE people ADD COLUMN email text;\nCREATE INDEX people_email ON people (email);',
      '0002_email.down.sql': 'DROP INDEX people_email;\nALTER TABLE people DROP COLUMN email;',
      '0003_audit.up.sql': 'CREATE TABLE audit (id int);',
      '0003_audit.down.sql': 'DROP TABLE audit;',
    });
    expect(run.code, run.stderr).toBe(0);
    const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(await readFile(junit, 'utf8')) as {
      testsuites: { tests: string; failures: string; testsuite: { testcase: Array<{ name: string; time: string; failure?: unknown }> } };
    };
    expect(xml.testsuites.failures).toBe('0');
    expect(xml.testsuites.testsuite.testcase.map((c) => c.name)).toEqual(['up 0002_email', 'up 0003_audit', 'down 0003_audit', 'down 0002_email', 'reapply 0002_email', 'reapply 0003_audit']);
    expect(xml.testsuites.testsuite.testcase.every((c) => Number(c.time) >= 0 && c.failure === undefined)).toBe(true);
    expect(await readFile(markdown, 'utf8')).toMatch(/## belay rehearse: passed/);
    expect(await leftovers()).toEqual(before);
  });

  it('a down that forgets an index fails and shows the schema diff, naming the revision', async () => {
    const { run, report, junit } = await rehearse({
      ...BASE,
      '0002_index.up.sql': 'CREATE INDEX people_name ON people (name);',
      '0002_index.down.sql': 'SELECT 1;',
    });
    expect(run.code).toBe(10);
    const failed = report!.cases.find((c) => !c.ok)!;
    expect(failed).toMatchObject({ revision: '0002_index', direction: 'down', message: 'the down does not give back the schema from before the up' });
    expect(failed.diff).toMatch(/^\+ CREATE INDEX people_name ON public\.people USING btree \(name\);$/m);
    const xml = await readFile(junit, 'utf8');
    expect(xml).toMatch(/<testcase classname="belay.rehearse" name="down 0002_index"[^>]*>\s*<failure message="the down does not give back the schema/);
  });

  it('what a bad down leaves behind is blamed on that revision only, not on the earlier downs that run after it', async () => {
    const { run, report } = await rehearse({
      ...BASE,
      '0002_audit.up.sql': 'CREATE TABLE audit (id int);',
      '0002_audit.down.sql': 'DROP TABLE audit;',
      '0003_index.up.sql': "CREATE INDEX people_name ON people (name);\nUPDATE people SET nickname = 'x';",
      '0003_index.down.sql': 'SELECT 1;',
    });
    expect(run.code).toBe(10);
    const downs = report!.cases.filter((c) => c.direction === 'down');
    expect(downs.map((c) => [c.revision, c.ok])).toEqual([
      ['0003_index', false],
      ['0002_audit', true],
    ]);
    expect(downs[0]!.message).toMatch(/schema .*; the round trip changed data: the content of public\.people changed/);
    expect(downs[1]!.warnings).toEqual([
      'the schema still carries what the down of a later revision left behind (reported there)',
      'the data still carries what the round trip of a later revision changed (reported there)',
    ]);
  });

  it('a down that loses data fails and names the table; a column that only moved is a warning', async () => {
    const { run, report } = await rehearse({
      // nickname is not the last column: re-added, it moves to the end
      '0001_people.up.sql': 'CREATE TABLE people (id int PRIMARY KEY, nickname text, name text NOT NULL);',
      '0001_people.down.sql': 'DROP TABLE people;',
      '0002_nicknames.up.sql': "UPDATE people SET nickname = upper(nickname);",
      '0002_nicknames.down.sql': 'ALTER TABLE people DROP COLUMN nickname;\nALTER TABLE people ADD COLUMN nickname text;',
    });
    expect(run.code).toBe(10);
    const down = report!.cases.find((c) => c.direction === 'down')!;
    expect(down.ok).toBe(false);
    expect(down.message).toMatch(/the round trip changed data: the content of public\.people changed/);
    expect(down.warnings).toEqual(['the schema differs only in column order (a re-added column goes last)']);
  });

  it('reports a table rewritten under ACCESS EXCLUSIVE, with how long', async () => {
    const { run, report } = await rehearse({
      ...BASE,
      '0002_big.up.sql': 'CREATE TABLE big AS SELECT g AS n, md5(g::text) AS v FROM generate_series(1, 300000) g;',
      '0002_big.down.sql': 'DROP TABLE big;',
      '0003_widen.up.sql': 'ALTER TABLE big ALTER COLUMN n TYPE bigint;',
      '0003_widen.down.sql': 'ALTER TABLE big ALTER COLUMN n TYPE integer;',
    });
    expect(run.code, run.stderr).toBe(0);
    const widen = report!.cases.find((c) => c.revision === '0003_widen' && c.direction === 'up')!;
    expect(widen.locks[0]).toMatchObject({ table: 'big', mode: 'AccessExclusiveLock' });
    expect(widen.locks[0]!.heldMs).toBeGreaterThan(0);
    expect(run.stdout).toBeTruthy();
  });

  it('leaves no cluster or database behind after success, failure or SIGINT', async () => {
    const before = await leftovers();
    const ok = await rehearse({ ...BASE, '0002_t.up.sql': 'CREATE TABLE t (id int);', '0002_t.down.sql': 'DROP TABLE t;' }, [], true);
    expect(ok.run.code, ok.run.stderr).toBe(0);
    expect(ok.report!.cases).toHaveLength(3);
    const failed = await rehearse({ ...BASE, '0002_t.up.sql': 'CREATE TABLE t (id int);', '0002_t.down.sql': 'SELECT 1;' }, [], true);
    expect(failed.run.code).toBe(10);
    // SIGINT in the middle of a slow revision
    const db = await freshDatabase();
    const project = await makeProject({ ...BASE, '0002_slow.up.sql': 'SELECT pg_sleep(2);', '0002_slow.down.sql': 'SELECT 1;' });
    const running = startBelay(['--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--from', '0001'], { cwd: project.dir, env: cleanEnv({ DATABASE_URL: db.url }) });
    for (let i = 0; i < 400 && (await leftovers()).databases.length === before.databases.length; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 300));
    running.child.kill('SIGINT');
    const interrupted = await running.done;
    expect(interrupted.code).not.toBe(0);
    expect(await leftovers()).toEqual(before);
  });
});
