import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

interface Result {
  runId: string;
  outcome: string;
  message: string;
  hint?: string;
  unhealthy: string[];
  restore?: { ok: boolean };
}

const HAS_100 = { name: 't-has-100', query: 'select 1 from t having count(*) = 100', expect: 'some-rows' };
const T_WITH_100 = {
  '0001_t.up.sql': 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT g FROM generate_series(1, 100) g;',
  '0001_t.down.sql': 'DROP TABLE t;',
};

async function journalOf(project: TestProject, runId: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(join(project.backups, 'journal', `${runId}.jsonl`), 'utf8');
  return text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

const stepEnds = (lines: Array<Record<string, unknown>>): string[] =>
  lines.filter((l) => l.type === 'step' && l.event === 'end').map((l) => [l.step, l.revision ?? l.subject, l.outcome].filter(Boolean).join(' '));

/** The run's steps from the restored database (`belay history ID`), and its last line. */
async function history(project: TestProject, url: string, runId: string): Promise<string> {
  const run = await belay([...baseArgs(project, url), 'history', runId], { cwd: project.dir });
  expect(run.code, run.stderr).toBe(0);
  return run.stdout;
}

describe('health after a restore', () => {
  it('migrate up: the down cannot bring the rows back, the snapshot does, and health runs again on it (exit 11, nothing unhealthy)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(
      { ...T_WITH_100, '0002_purge.up.sql': 'DELETE FROM t WHERE id > 50;', '0002_purge.down.sql': 'SELECT 1;' },
      { health: { sql: [HAS_100], timeoutSeconds: 1, intervalSeconds: 1 } },
    );
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0001', '--allow-unhealthy'], { cwd: project.dir })).code).toBe(0);
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(11);
    const result = jsonResult<Result>(run);
    expect(result).toMatchObject({ outcome: 'restored', unhealthy: [], restore: { ok: true } });
    expect(await db.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: 100 }]);
    const steps = stepEnds(await journalOf(project, result.runId));
    expect(steps.slice(steps.indexOf('health after-apply failed'))).toEqual([
      'health after-apply failed',
      'down 0002_purge ok',
      'health after-rollback failed',
      'integrity failed',
      expect.stringMatching(/^restore \S+ ok$/),
      'health after-restore ok',
    ]);
    expect(await history(project, db.url, result.runId)).toMatch(/end\s+health after-restore ok/);
    expect(await db.query('SELECT status, exit_code FROM belay.runs WHERE id = $1', [result.runId])).toEqual([{ status: 'restored', exit_code: 11 }]);
    expect((await belay([...baseArgs(project, db.url), 'verify'], { cwd: project.dir })).code).toBe(0);
  });

  it('migrate up: health that still fails on the restored database ends 12, naming the checks', async () => {
    const db = await freshDatabase();
    const project = await makeProject(
      { ...T_WITH_100, '0002_purge.up.sql': 'DELETE FROM t WHERE id > 50;', '0002_purge.down.sql': 'SELECT 1;' },
      { health: { sql: [HAS_100], timeoutSeconds: 1, intervalSeconds: 1 } },
    );
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0001', '--allow-unhealthy'], { cwd: project.dir })).code).toBe(0);
    // passes for the baseline only: the application it stands for breaks once the change is made, and stays broken
    const calls = join(project.dir, 'calls');
    const config = { health: { sql: [HAS_100], command: [{ name: 'app', run: `echo x >> '${calls}'; test "$(wc -l < '${calls}')" -eq 1` }], timeoutSeconds: 1, intervalSeconds: 1 } };
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(config));
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(12);
    const result = jsonResult<Result>(run);
    expect(result).toMatchObject({ outcome: 'manual-action-needed', unhealthy: ['app'], restore: { ok: true } });
    expect(result.message).toMatch(/; but health checks still fail on the restored database: app$/);
    expect(result.hint).toMatch(/belay verify/);
    expect(await db.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: 100 }]);
    const steps = stepEnds(await journalOf(project, result.runId));
    expect(steps.slice(-2)).toEqual([expect.stringMatching(/^restore \S+ ok$/), 'health after-restore failed']);
    expect(await history(project, db.url, result.runId)).toMatch(/end\s+health after-restore failed/);
    expect(await db.query('SELECT status, exit_code FROM belay.runs WHERE id = $1', [result.runId])).toEqual([{ status: 'manual-action-needed', exit_code: 12 }]);
  });

  it('rollback --to: a down that deletes rows is undone by the snapshot, and health runs again on it (exit 11, nothing unhealthy)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(
      { ...T_WITH_100, '0002_noop.up.sql': 'SELECT 1;', '0002_noop.down.sql': 'DELETE FROM t WHERE id > 50;' },
      { health: { sql: [HAS_100], timeoutSeconds: 1, intervalSeconds: 1 } },
    );
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--allow-unhealthy'], { cwd: project.dir })).code).toBe(0);
    const run = await belay([...baseArgs(project, db.url), '--json', 'rollback', '--to', '0001_t', '--yes', '--backup-scope', 'full'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(11);
    const result = jsonResult<Result>(run);
    expect(result).toMatchObject({ outcome: 'restored', unhealthy: [], restore: { ok: true } });
    expect(await db.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: 100 }]);
    const steps = stepEnds(await journalOf(project, result.runId));
    expect(steps.slice(-2)).toEqual([expect.stringMatching(/^restore \S+ ok$/), 'health after-restore ok']);
    expect(await history(project, db.url, result.runId)).toMatch(/end\s+health after-restore ok/);
    expect(run.stderr).toMatch(/· health after-restore/);
  });

  it('belay restore: health runs on the database it put back; a snapshot older than what the checks need ends 12 naming them (it ended 0, "done and healthy", unchecked), one that passes ends 0', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...T_WITH_100, '0002_u.up.sql': 'CREATE TABLE u (id int);', '0002_u.down.sql': 'DROP TABLE u;' });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001_t'], { cwd: project.dir })).code).toBe(0);
    const old = (jsonResult(await belay([...args, '--json', 'backup'], { cwd: project.dir })) as { snapshot: { id: string } }).snapshot.id;
    expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
    // the application now needs table u, which the older snapshot does not have
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify({ health: { sql: [HAS_100, { name: 'u-exists', query: "select 1 where to_regclass('u') is not null", expect: 'some-rows' }], timeoutSeconds: 1, intervalSeconds: 1 } }));
    const run = await belay([...args, '--json', '--yes', 'restore', old], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(12);
    const result = jsonResult<Result>(run);
    expect(result).toMatchObject({ outcome: 'manual-action-needed', unhealthy: ['u-exists'], restore: { ok: true } });
    expect(result.message).toMatch(/; but health checks still fail on the restored database: u-exists$/);
    expect(await db.query("SELECT to_regclass('u') IS NULL AS gone, (SELECT count(*)::int FROM t) AS n")).toEqual([{ gone: true, n: 100 }]);
    expect(stepEnds(await journalOf(project, result.runId)).slice(-2)).toEqual([expect.stringMatching(/^restore \S+ ok$/), 'health after-restore failed']);

    const now = (jsonResult(await belay([...args, '--json', 'backup'], { cwd: project.dir })) as { snapshot: { id: string } }).snapshot.id;
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify({ health: { sql: [HAS_100], timeoutSeconds: 1, intervalSeconds: 1 } }));
    const healthy = await belay([...args, '--json', '--yes', 'restore', now], { cwd: project.dir });
    expect(healthy.code, healthy.stdout + healthy.stderr).toBe(0);
    const done = jsonResult<Result>(healthy);
    expect(done).toMatchObject({ outcome: 'ok', unhealthy: [] });
    expect(stepEnds(await journalOf(project, done.runId)).slice(-1)).toEqual(['health after-restore ok']);
  });
});
