import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, cleanEnv, startBelay, type CliRun } from './support/cli.js';
import { pollUntil } from './support/kill.js';
import { adminQuery, freshDatabase } from './support/pg.js';
import { makeProject, type TestProject } from './support/project.js';

const TWO = {
  '0001_people.up.sql': 'CREATE TABLE people (id int PRIMARY KEY);',
  '0001_people.down.sql': 'DROP TABLE people;',
  '0002_email.up.sql': 'ALTER TABLE people ADD COLUMN email text;',
  '0002_email.down.sql': 'ALTER TABLE people DROP COLUMN email;',
};

/** The throwaway databases rehearsals of `of` left (their marker names it): other test files rehearse on this cluster at the same time. */
const throwaways = async (of: string): Promise<string[]> =>
  (
    await adminQuery('postgres', "SELECT datname FROM pg_database d WHERE datname LIKE 'belay_rehearse%' AND shobj_description(d.oid, 'pg_database') LIKE '%' || $1 || '%' ORDER BY 1", [
      JSON.stringify({ of }).slice(1, -1),
    ])
  ).map((r) => String(r.datname));

const said = (run: CliRun): { exitCode: number; message: string; next: string | null } => JSON.parse(run.stdout) as { exitCode: number; message: string; next: string | null };

const args = (project: TestProject, url: string): string[] => ['--database-url', url, '--migrations', project.migrations, '--backups', project.backups];

/** A database at 0001 applied by migrate up, then a third revision on disk to rehearse. */
async function appliedProject() {
  const db = await freshDatabase();
  const project = await makeProject({ '0001_people.up.sql': TWO['0001_people.up.sql'], '0001_people.down.sql': TWO['0001_people.down.sql'] });
  const up = await belay([...args(project, db.url), 'migrate', 'up'], { cwd: project.dir });
  expect(up.code, up.stderr).toBe(0);
  await writeFile(join(project.migrations, '0002_email.up.sql'), TWO['0002_email.up.sql']);
  await writeFile(join(project.migrations, '0002_email.down.sql'), TWO['0002_email.down.sql']);
  return { db, project };
}

describe('belay rehearse: the start it rehearses from', () => {
  it('an applied revision edited since (drift) is refused as migrate up refuses it: exit 4, its next, no throwaway made', async () => {
    const { db, project } = await appliedProject();
    // the connected database has people without the column this edit adds: a throwaway built from the file would not be it
    await writeFile(join(project.migrations, '0001_people.up.sql'), 'CREATE TABLE people (id int PRIMARY KEY, name text);');
    const run = await belay([...args(project, db.url), '--json', 'rehearse'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(4);
    const rehearsal = said(run);
    expect(rehearsal.message).toBe('the connected database cannot be rehearsed from; nothing was rehearsed: files of applied revisions changed since they were applied: 0001_people (0001_people.up.sql)');
    const migrate = said(await belay([...args(project, db.url), '--json', 'migrate', 'up'], { cwd: project.dir }));
    expect(migrate.exitCode).toBe(4);
    expect(rehearsal.next).toBe(migrate.next);
    expect(await throwaways(db.name)).toEqual([]);
  }, 120_000);

  it('an applied revision missing from disk is refused too (exit 4); so is a template whose record drifted', async () => {
    const { db, project } = await appliedProject();
    await rm(join(project.migrations, '0001_people.up.sql'));
    await rm(join(project.migrations, '0001_people.down.sql'));
    const missing = await belay([...args(project, db.url), 'rehearse'], { cwd: project.dir });
    expect(missing.code, missing.stdout + missing.stderr).toBe(4);
    expect(missing.stderr).toContain('belay: the connected database cannot be rehearsed from; nothing was rehearsed: applied revisions are missing from the migrations folder: 0001_people');
    expect(missing.stderr).toContain('next: Restore the missing revision files, or point --migrations at the right folder. Nothing was changed.');

    // the template holds 0001 as applied, with another file than the one on disk now
    await writeFile(join(project.migrations, '0001_people.up.sql'), 'CREATE TABLE people (id int PRIMARY KEY, name text);');
    await writeFile(join(project.migrations, '0001_people.down.sql'), TWO['0001_people.down.sql']);
    const other = await freshDatabase();
    const template = await belay([...args(project, other.url), 'rehearse', '--from', '0', '--template', db.name], { cwd: project.dir });
    expect(template.code, template.stdout + template.stderr).toBe(4);
    expect(template.stderr).toContain(`belay: template ${db.name} cannot be rehearsed from; nothing was rehearsed: files of applied revisions changed since they were applied: 0001_people (0001_people.up.sql)`);
    expect(await throwaways(other.name)).toEqual([]);
  }, 120_000);

  it('--template with no server to copy it on is a usage error (exit 2), nothing rehearsed', async () => {
    const project = await makeProject(TWO);
    const run = await belay(['--migrations', project.migrations, '--backups', project.backups, '--json', 'rehearse', '--template', 'app_template'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(2);
    const usage = said(run);
    expect(usage.message).toBe('--template app_template copies a database of the connected server, and there is none: with no connection settings (or --embedded) the rehearsal makes an ephemeral cluster of its own, which holds no such database; nothing was rehearsed');
    expect(usage.next).toBe('Point belay at the server that holds the template (--database-url, DATABASE_URL or the PG* variables), or leave --template out.');
  }, 60_000);
});

describe('belay rehearse: what it says while it runs', () => {
  it('off a terminal, stderr has each revision as its up, down and reapply start and end, at the default log level', async () => {
    const db = await freshDatabase();
    const project = await makeProject(TWO);
    const run = await belay([...args(project, db.url), 'rehearse', '--from', '0001'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const steps = run.stderr.split('\n').filter((line) => /^[+-] /.test(line)).map((line) => line.replace(/\(\d+ ms\)/, '(N ms)'));
    expect(steps).toEqual([
      '+ 0001_people ..',
      '+ 0001_people .. ok (N ms)',
      '+ 0002_email ..',
      '+ 0002_email .. ok (N ms)',
      '- 0002_email ..',
      '- 0002_email .. ok (N ms)',
      '+ 0002_email ..',
      '+ 0002_email .. ok (N ms)',
    ]);
  }, 60_000);

  it('SIGTERM during a revision: a plain line (no JSON log record, no colour under CI=true) naming the revision running', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...TWO, '0002_email.up.sql': 'SELECT pg_sleep(15);\nALTER TABLE people ADD COLUMN email text;' });
    // the URL in the environment: one on the command line is warned about (a log record, not this fix's)
    const running = startBelay(['--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--from', '0001'], { cwd: project.dir, env: cleanEnv({ CI: 'true', DATABASE_URL: db.url }) });
    let stderr = '';
    running.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await pollUntil(
      async () => Number((await adminQuery('postgres', "SELECT count(*) AS n FROM pg_stat_activity WHERE datname LIKE 'belay_rehearse%' AND strpos(query, 'pg_sleep(15)') > 0"))[0]!.n) === 1,
      'the rehearsal in 0002_email',
    );
    // what a CI timeout's kill leaves in the log: the revision that was running
    expect(stderr).toMatch(/\n\+ 0002_email \.\.\n$/);
    running.child.kill('SIGTERM');
    const run = await running.done;
    expect(run.code, run.stdout + run.stderr).toBe(4);
    expect(run.stderr).toContain('\n  SIGTERM: stopping the rehearsal: the statements running on its throwaway are cancelled, and the throwaway is removed once they end (nothing real was touched); send it again to remove it at once (during + 0002_email)\n');
    expect(run.stderr).not.toMatch(/"level"|\x1b/);
  }, 60_000);

  it('the revisions skipped after an up that failed are one line of the text; the JUnit report keeps every case', async () => {
    const db = await freshDatabase();
    const files: Record<string, string> = { ...TWO, '0002_email.up.sql': 'ALTER TABLE nobody ADD COLUMN email text;' };
    for (const n of ['0003', '0004', '0005', '0006']) {
      files[`${n}_t.up.sql`] = `CREATE TABLE t${n} (id int);`;
      files[`${n}_t.down.sql`] = `DROP TABLE t${n};`;
    }
    const project = await makeProject(files);
    const junit = join(project.dir, 'report.xml');
    const run = await belay([...args(project, db.url), 'rehearse', '--from', '0001', '--junit', junit], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(10);
    expect(run.stdout).toContain('\n  skip 0003_t … 0006_t (4 revisions)\n       not tried: the up of 0002_email failed, and every later revision builds on it\n');
    expect(run.stdout.match(/skip/g)).toHaveLength(3);
    expect((await readFile(junit, 'utf8')).match(/<skipped /g)).toHaveLength(2 + 4 * 3);
  }, 60_000);
});
