import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { XMLParser } from 'fast-xml-parser';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { LockSampler } from '../src/rehearse/lock-sampler.js';
import { belay, CLI, cleanEnv, jsonResult, startBelay } from './support/cli.js';
import { adminQuery, freshDatabase, rejectOnMaintenanceDatabases } from './support/pg.js';
import { makeProject } from './support/project.js';

const execFileAsync = promisify(execFile);

const BASE = {
  '0001_people.up.sql': "CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, nickname text);",
  '0001_people.down.sql': 'DROP TABLE people;',
};
const SEED = "INSERT INTO people (id, name, nickname) SELECT g, 'person ' || g, 'nick ' || g FROM generate_series(1, 500) g;";

async function leftovers(): Promise<{ dirs: string[]; databases: string[] }> {
  // an ephemeral cluster's folder (mkdtemp's six characters), not the folder of another test file's server
  const dirs = (await readdir(tmpdir())).filter((name) => /^belay-rehearse-[A-Za-z0-9]{6}$/.test(name));
  const rows = await adminQuery('postgres', "SELECT datname FROM pg_database WHERE datname LIKE 'belay_rehearse_%'");
  return { dirs, databases: rows.map((r) => String(r.datname)) };
}

interface Case {
  revision: string;
  direction: string;
  status: 'passed' | 'failed' | 'skipped';
  ok: boolean;
  message?: string;
  diff?: string;
  warnings: string[];
  durationMs: number;
  wallMs: number;
  locks: Array<{ table: string; mode: string; heldMs: number }>;
}

async function rehearse(files: Record<string, string>, extra: string[] = [], ephemeral = false) {
  const db = await freshDatabase();
  const project = await makeProject(files);
  const seed = join(project.dir, 'seed.sql');
  await writeFile(seed, SEED);
  const junit = join(project.dir, 'report.xml');
  const markdown = join(project.dir, 'report.md');
  const connection = ephemeral ? [] : ['--database-url', db.url];
  const run = await belay([...connection, '--migrations', project.migrations, '--backups', project.backups, '--json', 'rehearse', '--from', '0001', '--seed', seed, '--junit', junit, '--markdown', markdown, ...extra], { cwd: project.dir });
  return { run, junit, markdown, report: run.stdout ? (jsonResult(run) as { ok: boolean; cases: Case[]; checksNotRun: string[] }) : undefined };
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
    // each revision judged alone: its up, its down right after it, its up again right after its down
    expect(xml.testsuites.testsuite.testcase.map((c) => c.name)).toEqual(['up 0002_email', 'down 0002_email', 'reapply 0002_email', 'up 0003_audit', 'down 0003_audit', 'reapply 0003_audit']);
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
    expect((JSON.parse(run.stdout) as { next: string }).next).toMatch(/^Fix 0002_index \(/);
    const failed = report!.cases.find((c) => !c.ok)!;
    expect(failed).toMatchObject({ revision: '0002_index', direction: 'down', message: 'the down does not give back the schema from before the up (1 object(s) left behind)' });
    expect(failed.diff).toBe('+ index public.people_name: CREATE INDEX people_name ON public.people USING btree (name)');
    const xml = await readFile(junit, 'utf8');
    expect(xml).toMatch(/<testcase classname="belay.rehearse" name="down 0002_index"[^>]*>\s*<failure message="the down does not give back the schema/);
  });

  it('what a bad down leaves behind is blamed on that revision only, not on the other revisions', async () => {
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
      ['0002_audit', true],
      ['0003_index', false],
    ]);
    expect(downs[1]!.message).toMatch(/schema .*; the round trip changed data: the content of public\.people changed/);
    expect(downs[0]!.warnings).toEqual([]);
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
    expect(down.warnings).toEqual(['the columns of public.people stand in another order (id, nickname, name → id, name, nickname): a re-added column goes last']);
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

  it('reports the ACCESS EXCLUSIVE lock of a table the revision drops, which its own catalogs no longer show before it commits', async () => {
    const db = await freshDatabase();
    await db.appQuery('CREATE TABLE tokens (token text PRIMARY KEY)');
    const [work, observer] = [new pg.Client({ connectionString: db.url }), new pg.Client({ connectionString: db.url })];
    await Promise.all([work.connect(), observer.connect()]);
    try {
      const pid = (await work.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      // one sample at the start, none while the revision runs: only the look before COMMIT can see the drop
      const sampler = new LockSampler(observer, pid, 60_000);
      sampler.start();
      // queued behind the first sample on the observer's connection: that sample is taken before the drop
      await observer.query('SELECT 1');
      await work.query('BEGIN');
      await work.query('DROP TABLE tokens');
      await sampler.lookFromInside(work);
      await work.query('COMMIT');
      expect(await sampler.stop()).toEqual([expect.objectContaining({ table: 'tokens', mode: 'AccessExclusiveLock' })]);
    } finally {
      await Promise.all([work.end(), observer.end()]);
    }
  });

  it('a seed that is missing, or whose SQL fails, is refused with exit 2 and next:, naming the file (and the line), never exit 1', async () => {
    const db = await freshDatabase();
    const project = await makeProject(BASE);
    const args = ['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--from', '0001', '--seed'];
    const missing = await belay([...args, join(project.dir, 'nope.sql')], { cwd: project.dir });
    expect(missing.code, missing.stderr).toBe(2);
    expect(missing.stderr).toMatch(/cannot read the seed .*nope\.sql: ENOENT/);
    expect(missing.stderr).toMatch(/next: /);
    const seed = join(project.dir, 'bad-seed.sql');
    await writeFile(seed, "INSERT INTO people (id, name) VALUES (1, 'a');\n\nINSERT INTO items VALUES (1);\n");
    const failing = await belay(['--json', ...args, seed], { cwd: project.dir });
    expect(failing.code, failing.stderr).toBe(2);
    expect(jsonResult(failing)).toBeDefined();
    expect(failing.stdout).toMatch(/bad-seed\.sql line 3: relation \\"items\\" does not exist/);
    expect(failing.stdout).not.toMatch(/bug in belay/);
  });

  it('a script seed is run as the file it names (a bare name in the working folder, a space in it); one that cannot be run is refused first (exit 2)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(BASE);
    const args = ['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--from', '0001', '--seed'];
    await writeFile(join(project.dir, 'my seed.sh'), '#!/bin/sh\necho "$PGDATABASE" > seeded\n', { mode: 0o755 });
    const run = await belay([...args, 'my seed.sh'], { cwd: project.dir });
    expect(run.code, run.stderr).toBe(0);
    expect(await readFile(join(project.dir, 'seeded'), 'utf8')).toMatch(/^belay_rehearse_/);
    const missing = await belay([...args, 'nope.sh'], { cwd: project.dir });
    expect(missing.code, missing.stderr).toBe(2);
    expect(missing.stderr).toMatch(/cannot run the seed script nope\.sh: ENOENT/);
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

// The files below rehearse each class of revision set; in this file, so that they never run beside the leftovers checks above.
interface VerdictCase {
  revision: string;
  direction: 'up' | 'down' | 'reapply';
  status: 'passed' | 'failed' | 'skipped';
  ok: boolean;
  message?: string;
  diff?: string;
  warnings: string[];
  durationMs: number;
  wallMs: number;
}

interface VerdictReport {
  ok: boolean;
  cases: VerdictCase[];
  checksNotRun: string[];
  timings: { cycleMs: number };
}

const PEOPLE_ONLY = {
  '0001_people.up.sql': 'CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, nickname text);',
  '0001_people.down.sql': 'DROP TABLE people;',
};
const PEOPLE_SEED = "INSERT INTO people (id, name, nickname) SELECT g, 'person ' || g, 'nick ' || g FROM generate_series(1, 300) g;";

/** Rehearse from 0001 with the people seed on a throwaway database of the test server. */
async function rehearseFromPeople(files: Record<string, string>, config?: object): Promise<{ code: number | null; stderr: string; report: VerdictReport; junit: string }> {
  const db = await freshDatabase();
  const project = await makeProject({ ...PEOPLE_ONLY, ...files }, config);
  const seed = join(project.dir, 'seed.sql');
  await writeFile(seed, PEOPLE_SEED);
  const junit = join(project.dir, 'report.xml');
  const run = await belay(['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups, '--json', 'rehearse', '--from', '0001', '--seed', seed, '--junit', junit], { cwd: project.dir });
  if (!run.stdout) throw new Error(`rehearse printed nothing (exit ${run.code}): ${run.stderr}`);
  return { code: run.code, stderr: run.stderr, report: JSON.parse(run.stdout).result as VerdictReport, junit: await readFile(junit, 'utf8').catch((error: unknown) => {
      throw new Error(`rehearse wrote no JUnit report (exit ${run.code}): ${run.stdout.slice(0, 3000)}`, { cause: error });
    }),
  };
}

const verdicts = (report: VerdictReport) => report.cases.map((c) => `${c.status} ${c.direction} ${c.revision}`);
const find = (report: VerdictReport, direction: VerdictCase['direction'], revision: string): VerdictCase => report.cases.find((c) => c.direction === direction && c.revision === revision)!;

describe('rehearse judges every revision alone', () => {
  it('an up that fails after its own down: its down leaves the type behind, and its reapply fails', async () => {
    const { code, report } = await rehearseFromPeople({
      '0002_mood.up.sql': "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');\nALTER TABLE people ADD COLUMN mood mood NOT NULL DEFAULT 'ok';",
      '0002_mood.down.sql': 'ALTER TABLE people DROP COLUMN mood;',
      '0003_audit.up.sql': 'CREATE TABLE audit (id int);',
      '0003_audit.down.sql': 'DROP TABLE audit;',
    });
    expect(code).toBe(10);
    expect(verdicts(report)).toEqual(['passed up 0002_mood', 'failed down 0002_mood', 'failed reapply 0002_mood', 'passed up 0003_audit', 'passed down 0003_audit', 'passed reapply 0003_audit']);
    expect(find(report, 'down', '0002_mood').diff).toBe("+ enum public.mood: labels 'sad', 'ok', 'happy'");
    expect(find(report, 'reapply', '0002_mood').message).toMatch(/^the up fails after its own down: .*type "mood" already exists/);
  });

  it('what an earlier revision\'s down left behind (data) is not met by a later revision: it goes on from the state right after the earlier up', async () => {
    const { code, report } = await rehearseFromPeople({
      '0002_flags.up.sql': "CREATE TABLE flags (id int PRIMARY KEY, name text);\nINSERT INTO flags VALUES (1, 'beta');",
      // a bad down: it empties the table instead of dropping it
      '0002_flags.down.sql': 'DELETE FROM flags;',
      '0003_flags_on.up.sql': 'ALTER TABLE flags ADD COLUMN enabled boolean NOT NULL DEFAULT true;',
      '0003_flags_on.down.sql': 'ALTER TABLE flags DROP COLUMN enabled;',
      // holds only on the state 0002's up leaves: one flag
      '0003_flags_on.verify.sql': 'SELECT count(*) = 1 FROM flags;',
    });
    expect(code).toBe(10);
    expect(verdicts(report)).toEqual(['passed up 0002_flags', 'failed down 0002_flags', 'failed reapply 0002_flags', 'passed up 0003_flags_on', 'passed down 0003_flags_on', 'passed reapply 0003_flags_on']);
    expect(find(report, 'down', '0002_flags').message).toMatch(/left behind/);
  });

  it.each([
    ['an ephemeral cluster', false],
    ['a throwaway database of the connected server', true],
  ])('from scratch on %s, a bad down is followed by a rebuild from a database made new, and the next revision goes on from the state right after the earlier up', async (_where, connected) => {
    const before = await leftovers();
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_flags.up.sql': "CREATE TABLE flags (id int PRIMARY KEY, name text);\nINSERT INTO flags VALUES (1, 'beta');",
      // a bad down: it empties the table instead of dropping it
      '0001_flags.down.sql': 'DELETE FROM flags;',
      '0002_flags_on.up.sql': 'ALTER TABLE flags ADD COLUMN enabled boolean NOT NULL DEFAULT true;',
      '0002_flags_on.down.sql': 'ALTER TABLE flags DROP COLUMN enabled;',
      // holds only on the state 0001's up leaves: one flag
      '0002_flags_on.verify.sql': 'SELECT count(*) = 1 FROM flags;',
    });
    const connection = connected ? ['--database-url', db.url] : [];
    const run = await belay([...connection, '--migrations', project.migrations, '--backups', project.backups, '--json', 'rehearse'], { cwd: project.dir });
    expect(run.code, run.stderr).toBe(10);
    const report = JSON.parse(run.stdout).result as VerdictReport & { from: string | null; where: string };
    expect(report.from).toBeNull();
    expect(report.where).toMatch(connected ? /^database belay_rehearse_/ : /^an ephemeral cluster/);
    expect(verdicts(report)).toEqual(['passed up 0001_flags', 'failed down 0001_flags', 'failed reapply 0001_flags', 'passed up 0002_flags_on', 'passed down 0002_flags_on', 'passed reapply 0002_flags_on']);
    expect(await leftovers()).toEqual(before);
  });

  it('a column order change alone is a warning, never a failure', async () => {
    const { code, report } = await rehearseFromPeople({
      '0002_tags.up.sql': 'CREATE TABLE tags (id int PRIMARY KEY, label text, note text);',
      '0002_tags.down.sql': 'DROP TABLE tags;',
      '0003_drop_label.up.sql': 'ALTER TABLE tags DROP COLUMN label;',
      '0003_drop_label.down.sql': 'ALTER TABLE tags ADD COLUMN label text;',
    });
    expect(code).toBe(0);
    const down = find(report, 'down', '0003_drop_label');
    expect(down).toMatchObject({ status: 'passed', warnings: ['the columns of public.tags stand in another order (id, label, note → id, note, label): a re-added column goes last'] });
  });

  it("'now' frozen into a default or a view, and now() defaults, are not a schema difference", async () => {
    const { code, report } = await rehearseFromPeople({
      '0002_seen.up.sql': "ALTER TABLE people ADD COLUMN seen timestamptz DEFAULT 'now';\nALTER TABLE people ADD COLUMN created timestamptz NOT NULL DEFAULT now();\nCREATE VIEW people_now AS SELECT id, 'now'::timestamptz AS at FROM people;",
      '0002_seen.down.sql': 'DROP VIEW people_now;\nALTER TABLE people DROP COLUMN created;\nALTER TABLE people DROP COLUMN seen;',
      '0003_live.up.sql': 'CREATE OR REPLACE VIEW people_now AS SELECT id, now() AS at FROM people;\nALTER TABLE people ALTER COLUMN seen SET DEFAULT now();',
      // puts back the frozen 'now', frozen at another moment than 0002's up did
      '0003_live.down.sql': "SELECT pg_sleep(0.01);\nCREATE OR REPLACE VIEW people_now AS SELECT id, 'now'::timestamptz AS at FROM people;\nALTER TABLE people ALTER COLUMN seen SET DEFAULT 'now';",
    });
    expect(code, JSON.stringify(report.cases.filter((c) => !c.ok))).toBe(0);
    expect(report.cases.every((c) => c.status === 'passed' && c.warnings.length === 0)).toBe(true);
  });

  it('a down that errors in the middle of a range is recorded and the rest still get verdicts; what cannot be tried is reported skipped, in JUnit too', async () => {
    const { code, report, junit } = await rehearseFromPeople({
      '0002_a.up.sql': 'CREATE TABLE a (id int);',
      '0002_a.down.sql': 'DROP TABLE a;',
      '0003_b.up.sql': 'CREATE TABLE b (id int);',
      // errors: the transaction rolls back, the state stays right after the up
      '0003_b.down.sql': 'DROP TABLE b;\nDROP TABLE no_such_table;',
      '0004_c.up.sql': '-- belay:no-transaction\nCREATE TABLE c (id int);\nCREATE INDEX CONCURRENTLY c_id ON c (id);',
      // errors halfway outside a transaction: c is gone, the index dropped; rebuilt before going on
      '0004_c.down.sql': '-- belay:no-transaction\nDROP INDEX CONCURRENTLY c_id;\nDROP TABLE c;\nDROP TABLE no_such_table;',
      '0005_c_more.up.sql': 'ALTER TABLE c ADD COLUMN note text;\nINSERT INTO b VALUES (1);',
      '0005_c_more.down.sql': 'ALTER TABLE c DROP COLUMN note;\nDELETE FROM b;',
      '0006_broken.up.sql': 'ALTER TABLE no_such_table ADD COLUMN x int;',
      '0006_broken.down.sql': 'SELECT 1;',
      '0007_after.up.sql': 'CREATE TABLE after_broken (id int);',
      '0007_after.down.sql': 'DROP TABLE after_broken;',
    });
    expect(code).toBe(10);
    expect(verdicts(report)).toEqual([
      'passed up 0002_a', 'passed down 0002_a', 'passed reapply 0002_a',
      'passed up 0003_b', 'failed down 0003_b', 'skipped reapply 0003_b',
      'passed up 0004_c', 'failed down 0004_c', 'skipped reapply 0004_c',
      'passed up 0005_c_more', 'passed down 0005_c_more', 'passed reapply 0005_c_more',
      'failed up 0006_broken', 'skipped down 0006_broken', 'skipped reapply 0006_broken',
      'skipped up 0007_after', 'skipped down 0007_after', 'skipped reapply 0007_after',
    ]);
    expect(find(report, 'down', '0003_b').message).toMatch(/no_such_table/);
    expect(find(report, 'up', '0007_after').message).toBe('not tried: the up of 0006_broken failed, and every later revision builds on it');

    const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(junit) as {
      testsuites: { tests: string; failures: string; skipped: string; testsuite: { skipped: string; time: string; testcase: Array<{ name: string; time: string; failure?: { message: string }; skipped?: { message: string } }> } };
    };
    expect(xml.testsuites).toMatchObject({ tests: '18', failures: '3', skipped: '7' });
    const byName = new Map(xml.testsuites.testsuite.testcase.map((c) => [c.name, c]));
    expect(byName.get('reapply 0003_b')!.skipped!.message).toBe('its down failed, so its up cannot be tried again');
    expect(byName.get('down 0007_after')!.skipped!.message).toMatch(/the up of 0006_broken failed/);
    expect(byName.get('down 0004_c')!.failure!.message).toMatch(/no_such_table/);
    // time is each case's wall time: the run and its checks, never less than the run alone
    for (const c of report.cases) {
      expect(c.wallMs).toBeGreaterThanOrEqual(c.durationMs);
      expect(byName.get(`${c.direction} ${c.revision}`)!.time).toBe((c.wallMs / 1000).toFixed(3));
    }
  });
});

describe('rehearse runs the checks migrate up runs', () => {
  it('a deliberate NOT VALID constraint passes; one made NOT VALID from valid, or a failing SQL check, fails the up; application checks are named as not run', async () => {
    const { code, report } = await rehearseFromPeople(
      {
        '0002_groups.up.sql': 'CREATE TABLE groups (id int PRIMARY KEY);\nALTER TABLE people ADD COLUMN group_id int;',
        '0002_groups.down.sql': 'ALTER TABLE people DROP COLUMN group_id;\nDROP TABLE groups;',
        '0003_fk_not_valid.up.sql': 'ALTER TABLE people ADD CONSTRAINT people_group_fk FOREIGN KEY (group_id) REFERENCES groups (id) NOT VALID;',
        '0003_fk_not_valid.down.sql': 'ALTER TABLE people DROP CONSTRAINT people_group_fk;',
        '0004_validate.up.sql': 'ALTER TABLE people VALIDATE CONSTRAINT people_group_fk;',
        '0004_validate.down.sql': 'SELECT 1;',
        '0005_weaken.up.sql': 'ALTER TABLE people DROP CONSTRAINT people_group_fk;\nALTER TABLE people ADD CONSTRAINT people_group_fk FOREIGN KEY (group_id) REFERENCES groups (id) NOT VALID;',
        '0005_weaken.down.sql': 'ALTER TABLE people DROP CONSTRAINT people_group_fk;\nALTER TABLE people ADD CONSTRAINT people_group_fk FOREIGN KEY (group_id) REFERENCES groups (id);',
        '0006_hide_people.up.sql': 'ALTER TABLE people RENAME TO persons;',
        '0006_hide_people.down.sql': 'ALTER TABLE persons RENAME TO people;',
      },
      {
        health: {
          sql: [{ name: 'people readable', query: 'SELECT 1 FROM people LIMIT 1', expect: 'some-rows' }],
          http: [{ name: 'app', url: 'http://127.0.0.1:9/health', expectStatus: 200 }],
        },
      },
    );
    expect(code).toBe(10);
    expect(report.checksNotRun).toEqual(['http:app']);
    expect(find(report, 'up', '0003_fk_not_valid').status).toBe('passed');
    expect(find(report, 'up', '0004_validate').status).toBe('passed');
    expect(find(report, 'up', '0005_weaken')).toMatchObject({
      status: 'failed',
      message: 'health failed after the up: structure: constraint people_group_fk on public.people was valid before the change and is NOT VALID now',
    });
    // a rejected up is still taken down, as migrate up would; the revisions after it are not tried, as migrate up stops there
    expect(find(report, 'down', '0005_weaken').status).toBe('passed');
    expect(find(report, 'up', '0006_hide_people')).toMatchObject({ status: 'skipped', message: 'not tried: the up of 0005_weaken failed, and every later revision builds on it' });
  });

  it('a failing SQL check fails the up that broke it; the up is still taken down, and the later revisions are skipped, not blamed for it (they failed the same check)', async () => {
    const { code, report } = await rehearseFromPeople(
      {
        '0002_hide_people.up.sql': 'ALTER TABLE people RENAME TO persons;',
        '0002_hide_people.down.sql': 'ALTER TABLE persons RENAME TO people;',
        '0003_audit.up.sql': 'CREATE TABLE audit (id int);',
        '0003_audit.down.sql': 'DROP TABLE audit;',
      },
      { health: { sql: [{ name: 'people readable', query: 'SELECT 1 FROM people LIMIT 1', expect: 'some-rows' }] } },
    );
    expect(code).toBe(10);
    expect(find(report, 'up', '0002_hide_people').message).toMatch(/^health failed after the up: people readable: query failed: relation "people" does not exist/);
    expect(verdicts(report)).toEqual(['failed up 0002_hide_people', 'passed down 0002_hide_people', 'passed reapply 0002_hide_people', 'skipped up 0003_audit', 'skipped down 0003_audit', 'skipped reapply 0003_audit']);
  });

  it('a check failing before any revision (the seed) is held against none and named in the warnings of each up, not blamed on the first revision (it was exit 10, FAIL up 0002 and every later one)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(
      {
        ...PEOPLE_ONLY,
        '0002_unrelated.up.sql': 'CREATE TABLE audit (id int);',
        '0002_unrelated.down.sql': 'DROP TABLE audit;',
        '0003_unrelated.up.sql': 'CREATE TABLE notes (id int);',
        '0003_unrelated.down.sql': 'DROP TABLE notes;',
      },
      { health: { sql: [{ name: 'nicknames set', query: 'SELECT 1 FROM people WHERE nickname IS NULL', expect: 'no-rows' }] } },
    );
    const seed = join(project.dir, 'seed.sql');
    await writeFile(seed, "INSERT INTO people (id, name) VALUES (1, 'no nickname');");
    const allowed = await belay(['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups, '--json', 'rehearse', '--from', '0001', '--seed', seed], { cwd: project.dir });
    expect(allowed.code, allowed.stdout + allowed.stderr).toBe(0);
    const report = jsonResult(allowed) as VerdictReport;
    expect(verdicts(report)).toEqual(['passed up 0002_unrelated', 'passed down 0002_unrelated', 'passed reapply 0002_unrelated', 'passed up 0003_unrelated', 'passed down 0003_unrelated', 'passed reapply 0003_unrelated']);
    expect(find(report, 'up', '0003_unrelated').warnings).toEqual(['nicknames set fails, as before the first revision: 1 row(s): [{"?column?":1}]']);
  });

  it('an up that breaks an integrity invariant fails, as migrate up rejects it; one that keeps it passes (it passed unchecked)', async () => {
    const { code, report } = await rehearseFromPeople(
      {
        '0002_nicknames.up.sql': "UPDATE people SET nickname = name WHERE id = 1;",
        '0002_nicknames.down.sql': "UPDATE people SET nickname = 'nick 1' WHERE id = 1;",
        '0003_blank.up.sql': "UPDATE people SET name = '' WHERE id = 7;",
        '0003_blank.down.sql': "UPDATE people SET name = 'person 7' WHERE id = 7;",
      },
      { integrity: { invariants: [{ name: 'people named', query: "SELECT id FROM people WHERE name = ''" }] } },
    );
    expect(code).toBe(10);
    expect(find(report, 'up', '0002_nicknames').status).toBe('passed');
    expect(find(report, 'up', '0003_blank')).toMatchObject({ status: 'failed', message: expect.stringMatching(/^health failed after the up: invariant people named: 1 row\(s\)/) });
  });
});

describe('where rehearse starts, and what it loads there', () => {
  it('a --junit report that cannot be written is found out before the rehearsal (exit 2), not after it (it was exit 1)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(PEOPLE_ONLY);
    const report = join(project.dir, 'no-such-folder', 'r.xml');
    const run = await belay(['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--junit', report], { cwd: project.dir });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(`cannot write the --junit report ${report}: ENOENT`);
    expect(run.stderr).toMatch(/next: Point --junit at a file in a folder the user running belay can write/);
    expect(run.stderr).toContain('nothing was rehearsed');
    expect(run.stderr).not.toMatch(/this is a bug|ephemeral cluster|throwaway/);
    // a folder a permission check passes for root but where no file can be made (it ran the whole rehearsal, then said 'ENOENT: ENOENT: …')
    const proc = await belay(['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--markdown', '/proc/belay-report.md'], { cwd: project.dir });
    expect(proc.code, proc.stderr).toBe(2);
    expect(proc.stderr).toMatch(/cannot write the --markdown report \/proc\/belay-report\.md: E[A-Z]+: [^E]/);
    expect(proc.stderr).toContain('nothing was rehearsed');
  });

  it('a role pg_hba.conf rejects on postgres and template1 makes its throwaway from the connected database (it was exit 1, "permission denied for database")', async () => {
    const db = await freshDatabase();
    const role = `rehearser_${db.name.slice(2)}`;
    await adminQuery('postgres', `CREATE ROLE ${role} LOGIN CREATEDB PASSWORD 'pw-${role}'`);
    await db.query(`ALTER DATABASE ${db.name} OWNER TO ${role}; ALTER SCHEMA public OWNER TO ${role}`);
    await rejectOnMaintenanceDatabases(role);
    const url = new URL(db.url);
    url.username = role;
    url.password = `pw-${role}`;
    const project = await makeProject(PEOPLE_ONLY);
    const run = await belay(['--database-url', url.toString(), '--migrations', project.migrations, '--backups', project.backups, '--json', 'rehearse'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(verdicts(jsonResult(run))).toEqual(['passed up 0001_people', 'passed down 0001_people', 'passed reapply 0001_people']);
    expect(await adminQuery('postgres', "SELECT datname FROM pg_database WHERE datname LIKE 'belay_rehearse%' AND datdba = $1::regrole", [role])).toEqual([]);
  });

  it('a SQL seed with COPY … FROM stdin data is refused naming its line, whatever the data holds (exit 2)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(PEOPLE_ONLY);
    const seed = join(project.dir, 'seed.sql');
    await writeFile(seed, "-- people\nCOPY people (id, name, nickname) FROM stdin;\n1\tO'Brien\t\\N\n\\.\n");
    const run = await belay(['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--from', '0001', '--seed', seed], { cwd: project.dir });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(`seed ${seed} line 2: \`COPY people (id, name, nickname) FROM stdin\` is followed by data that only psql can send`);
    expect(run.stderr).toMatch(/next: Make the seed a script that runs psql/);
  });

  it('--from 0 starts from scratch, as rollback --to 0 ends there, whatever revision the connected database is at; --from 0000 is a revision prefix like any other', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...PEOPLE_ONLY, '0002_audit.up.sql': 'CREATE TABLE audit (id int);', '0002_audit.down.sql': 'DROP TABLE audit;' });
    const args = ['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups, '--json'];
    const up = await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir });
    expect(up.code, up.stderr).toBe(0);
    const zeros = await belay([...args, 'rehearse', '--from', '0000'], { cwd: project.dir });
    expect(zeros.code, zeros.stderr).toBe(2);
    expect(JSON.parse(zeros.stdout).message).toMatch(/--from 0000 names no revision/);
    const run = await belay([...args, 'rehearse', '--from', '0'], { cwd: project.dir });
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout).result as VerdictReport & { from: string | null };
    expect(report.from).toBeNull();
    expect(verdicts(report)).toEqual(['passed up 0001_people', 'passed down 0001_people', 'passed reapply 0001_people', 'passed up 0002_audit', 'passed down 0002_audit', 'passed reapply 0002_audit']);
  });
});

describe('rehearse refuses what it would ignore, and prints what it was told as text', () => {
  it('--from with --from-backup is exit 2 unless it names the snapshot\'s own revision (it was ignored: the rehearsal started at the snapshot)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...PEOPLE_ONLY,
      '0002_audit.up.sql': 'CREATE TABLE audit (id int);',
      '0002_audit.down.sql': 'DROP TABLE audit;',
      '0003_notes.up.sql': 'CREATE TABLE notes (id int);',
      '0003_notes.down.sql': 'DROP TABLE notes;',
    });
    const args = ['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups, '--json'];
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const id = (jsonResult(await belay([...args, 'backup'], { cwd: project.dir })) as { snapshot: { id: string } }).snapshot.id;
    const other = await belay([...args, 'rehearse', '--from-backup', id, '--from', '0003'], { cwd: project.dir });
    expect(other.code, other.stdout).toBe(2);
    const said = JSON.parse(other.stdout) as { message: string; next: string };
    expect(said.message).toBe(`--from 0003 is not where --from-backup ${id} starts: snapshot ${id} is at 0001_people`);
    expect(said.next).toMatch(/^Leave --from out \(or name the snapshot's own revision\), or leave --from-backup out/);
    const own = await belay([...args, 'rehearse', '--from-backup', id, '--from', '0001'], { cwd: project.dir });
    expect(own.code, own.stdout + own.stderr).toBe(0);
    expect(jsonResult(own)).toMatchObject({ from: '0001_people', revisions: ['0002_audit', '0003_notes'] });
  });

  it('a control character in an error is shown escaped off a terminal, and in the JUnit (well-formed XML) and Markdown reports; the XML was not well-formed and the output carried a raw ESC', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_names.up.sql': 'CREATE TABLE names (n text);',
      '0001_names.down.sql': 'DROP TABLE names;',
      '0002_uniq.up.sql': 'CREATE UNIQUE INDEX names_n ON names (n);',
      '0002_uniq.down.sql': 'DROP INDEX names_n;',
    });
    const seed = join(project.dir, 'seed.sql');
    await writeFile(seed, "INSERT INTO names VALUES (E'dup\\x1bname'), (E'dup\\x1bname');\n");
    const junit = join(project.dir, 'r.xml');
    const markdown = join(project.dir, 'r.md');
    const run = await belay(['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--from', '0001', '--seed', seed, '--junit', junit, '--markdown', markdown], { cwd: project.dir });
    expect(run.code, run.stderr).toBe(10);
    const controls = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
    expect(run.stdout).toContain('DETAIL: Key (n)=(dup\\x1bname) is duplicated.');
    expect(run.stdout + run.stderr).not.toMatch(controls);
    // parsed for real, by another XML parser than the one the other tests use
    const parsed = await execFileAsync('python3', ['-c', 'import xml.dom.minidom,sys; d=xml.dom.minidom.parse(sys.argv[1]); print(d.getElementsByTagName("failure")[0].getAttribute("message"))', junit]);
    expect(parsed.stdout).toContain('Key (n)=(dup\\x1bname) is duplicated.');
    const md = await readFile(markdown, 'utf8');
    expect(md).toContain('dup\\x1bname');
    expect(md).not.toMatch(controls);
  });

  it('on a terminal too, a control character the database said is shown escaped, in the report on stdout and an error on stderr (it was written raw: the terminal acted on it)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_names.up.sql': 'CREATE TABLE names (n text);',
      '0001_names.down.sql': 'DROP TABLE names;',
      '0002_uniq.up.sql': 'CREATE UNIQUE INDEX names_n ON names (n);',
      '0002_uniq.down.sql': 'DROP INDEX names_n;',
    });
    const dups = join(project.dir, 'dups.sql');
    await writeFile(dups, "INSERT INTO names VALUES (E'dup\\x1bname'), (E'dup\\x1bname');\n");
    // an error that sets the terminal's title, then rings its bell
    const failing = join(project.dir, 'failing.sql');
    await writeFile(failing, "DO $$ BEGIN RAISE EXCEPTION E'bad\\x1b]0;owned\\x07seed'; END $$;\n");
    // stdout and stderr on a pseudo-terminal: python3's pty copies what is written there to its own stdout
    const pty = 'import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))';
    const onTerminal = (seed: string) =>
      execFileAsync('python3', ['-c', pty, process.execPath, CLI, '--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--from', '0001', '--seed', seed], { cwd: project.dir, env: cleanEnv({ DATABASE_URL: db.url }) }).then(
        (done) => ({ code: 0, out: done.stdout }),
        (error: { code: number; stdout: string }) => ({ code: error.code, out: error.stdout }),
      );
    // what the terminal may act on: belay's own clearing of its live progress line, and line ends (\r\n on a terminal), nothing else
    const controls = (out: string): string[] => [...out.replaceAll('\x1b[K', '').replaceAll('\r', '').matchAll(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g)].map((m) => JSON.stringify(m[0]));

    const report = await onTerminal(dups);
    expect(report.code, report.out).toBe(10);
    expect(report.out).toContain('DETAIL: Key (n)=(dup\\x1bname) is duplicated.');
    expect(controls(report.out), report.out).toEqual([]);

    const error = await onTerminal(failing);
    expect(error.code, error.out).toBe(2);
    expect(error.out).toContain(`belay: seed ${failing} line 1: bad\\x1b]0;owned\\x07seed`);
    expect(controls(error.out), error.out).toEqual([]);
  });

  it('a --seed that cannot be read is refused before anything is started (it started the ephemeral cluster first)', async () => {
    const project = await makeProject(PEOPLE_ONLY);
    // no folder to make an ephemeral cluster in: what the rehearsal would have failed on, had it started one
    const run = await belay(['--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--seed', join(project.dir, 'nonexist.sql')], { cwd: project.dir, env: cleanEnv({ TMPDIR: join(project.dir, 'no-such-tmp') }) });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(`belay: cannot read the seed ${join(project.dir, 'nonexist.sql')}: ENOENT`);
    expect(run.stderr).not.toMatch(/cluster|throwaway/);
  });
});
