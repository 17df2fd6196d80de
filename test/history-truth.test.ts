import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareLogFile, startCluster, stopCluster } from '../src/cluster/local-cluster.js';
import type { TempCluster } from '../src/cluster/temp-cluster.js';
import { quoteIdent } from '../src/db/ident.js';
import { belay, startBelay, type CliRun } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { startStoppableCluster } from './support/stoppable-cluster.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

/**
 * What `history`, `status`, a refusal and the journal say about a run that
 * did not end normally (killed -9, or its server stopped under it) must be
 * the same thing, and true: where the run left the database, the step it
 * stopped at, every step it journaled, and what recover actually checked.
 */

type Row = Record<string, unknown>;

const payload = (stdout: string): Row => {
  const doc = JSON.parse(stdout) as Row;
  return doc.result && typeof doc.result === 'object' && !Array.isArray(doc.result) ? { ...doc, ...(doc.result as Row) } : doc;
};

async function until(what: string, probe: () => Promise<boolean>, done?: Promise<unknown>): Promise<void> {
  let finished = false;
  void done?.then(() => (finished = true));
  for (let i = 0; i < 6000 && !finished; i++) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never saw ${what}`);
}

async function journalOf(project: TestProject, runId: string): Promise<Row[]> {
  const text = await readFile(join(project.backups, 'journal', `${runId}.jsonl`), 'utf8');
  return text.split('\n').filter(Boolean).flatMap((l) => {
    try {
      return [JSON.parse(l) as Row];
    } catch {
      return [];
    }
  });
}

/** The journal files of runs of `command`, oldest first. */
async function runsOf(project: TestProject, command: string): Promise<string[]> {
  const ids: string[] = [];
  for (const file of (await readdir(join(project.backups, 'journal'))).sort()) {
    const id = file.replace(/\.jsonl$/, '');
    if ((await journalOf(project, id)).some((l) => l.type === 'run' && l.command === command)) ids.push(id);
  }
  return ids;
}

const stepLines = (lines: Row[]): Row[] => lines.filter((l) => l.type === 'step');
const label = (line: Row): string => [line.step, line.revision ?? line.subject].filter(Boolean).join(' ');

const BASE: Record<string, string> = {
  '0001_base.up.sql': "CREATE TABLE base (id int PRIMARY KEY, v text);\nINSERT INTO base SELECT g, md5(g::text) FROM generate_series(1, 2000) g;",
  '0001_base.down.sql': 'DROP TABLE base;',
};

const FIVE: Record<string, string> = {
  ...BASE,
  '0002_a.up.sql': 'CREATE TABLE a (id int);',
  '0002_a.down.sql': 'DROP TABLE a;',
  '0003_b.up.sql': 'CREATE TABLE b (id int);',
  '0003_b.down.sql': 'DROP TABLE b;',
  '0004_slow.up.sql': 'CREATE TABLE slow (id int);\nSELECT pg_sleep(30);',
  '0004_slow.down.sql': 'DROP TABLE slow;',
  '0005_c.up.sql': 'CREATE TABLE c (id int);',
  '0005_c.down.sql': 'DROP TABLE c;',
};

describe('a killed run, as history, status, a refusal and the journal tell it', () => {
  const sleeping = (db: { query: (sql: string) => Promise<Row[]> }, what: string) => async (): Promise<boolean> =>
    (await db.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE '%pg_sleep(30)%' AND query LIKE '%${what}%' AND query NOT LIKE '%pg_stat_activity%'`)).length > 0;

  it('killed -9 inside 0004 (0002 and 0003 committed): left at 0003; refusal and status name the same step; recover settles it there', async () => {
    const db = await freshDatabase();
    const project = await makeProject(FIVE);
    const args = baseArgs(project, db.url);
    const cli = (...rest: string[]): Promise<CliRun> => belay([...args, ...rest], { cwd: project.dir });
    expect((await cli('migrate', 'up', '--to', '0001')).code).toBe(0);
    const run = startBelay([...args, 'migrate', 'up', '--with-backup', '--backup-scope', 'full'], { cwd: project.dir });
    await until('0004 running', sleeping(db, 'slow'), run.done);
    // and journaled as begun: the next revision is sent behind a commit, before its start line is written
    await until('0004 begun in the journal', async () => {
      const [id] = (await runsOf(project, 'migrate-up')).slice(-1);
      return id !== undefined && (await journalOf(project, id)).some((l) => l.type === 'step' && l.event === 'start' && l.step === 'apply' && l.revision === '0004_slow');
    }, run.done);
    run.child.kill('SIGKILL');
    await run.done;
    const [runId] = await runsOf(project, 'migrate-up').then((ids) => ids.slice(-1));
    expect((await db.query('SELECT name FROM belay.migrations ORDER BY name')).map((r) => r.name)).toEqual(['0001_base', '0002_a', '0003_b']);

    const history = (JSON.parse((await cli('--json', 'history')).stdout) as { result: Row[] }).result.find((r) => r.runId === runId)!;
    expect(history).toMatchObject({ fromRevision: '0001_base', toRevision: '0003_b', lastStep: 'apply 0004_slow' });

    const status = payload((await cli('--json', 'status')).stdout);
    expect(status.interrupted).toMatchObject({ interruptedAt: 'apply 0004_slow', run: { runId } });
    // the snapshot the run took, named alike by both
    const { snapshotId } = status.interrupted as Row;
    expect(snapshotId).toMatch(/^\d{8}T/);
    expect(history.snapshotId).toBe(snapshotId);
    // the interrupted run as lastRun and history show it: where its steps left the database, not 0004 it never applied, and its snapshot
    expect((status.interrupted as Row).run).toEqual(status.lastRun);
    expect((status.interrupted as Row).run).toMatchObject({ toRevision: '0003_b', snapshotId });
    const refused = await cli('migrate', 'up');
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain(`interrupted at step "apply 0004_slow"`);

    // one word for the dead run, the lock free: status (text and --json) and history (text and --json)
    expect(status.lock).toBeNull();
    expect(status.lastRun).toMatchObject({ runId, status: 'interrupted' });
    expect((status.interrupted as Row).run).toMatchObject({ runId, status: 'interrupted' });
    expect(history.status).toBe('interrupted');
    const text = (await cli('status')).stdout;
    expect(text).toContain(`last run  ${runId} migrate-up → interrupted`);
    expect((await cli('history')).stdout.split('\n').find((line) => line.startsWith(runId!))).toMatch(/ unfinished {2}migrate-up {3}interrupted /);
    // plan and a dry run refuse it as the real run does, naming the same step
    const plan = payload((await cli('--json', 'plan')).stdout);
    expect(plan.problems).toEqual([expect.objectContaining({ name: 'unsettled', message: expect.stringContaining(`run ${runId} (migrate-up`) })]);
    expect((plan.problems as Row[])[0]!.message).toContain('interrupted at step "apply 0004_slow"');
    const dry = await cli('--json', 'migrate', 'up', '--dry-run');
    expect(dry.code, dry.stdout).toBe(4);
    expect(payload(dry.stdout)).toMatchObject({ outcome: 'refused', message: expect.stringContaining('interrupted at step "apply 0004_slow"'), next: expect.stringContaining('run `belay recover` first') });

    const recover = await cli('--json', 'recover');
    expect(recover.code, recover.stderr).toBe(10);
    const settled = (JSON.parse((await cli('--json', 'history')).stdout) as { result: Row[] }).result.find((r) => r.runId === runId)!;
    expect(settled).toMatchObject({ status: 'interrupted', fromRevision: '0001_base', toRevision: '0003_b', lastStep: 'apply 0004_slow', snapshotId });
    // its own time: from its start to the last step it journaled, not to when recover (a run of its own, later) settled it
    const lastAt = String(stepLines(await journalOf(project, runId!)).at(-1)!.at);
    const [recoverId] = (await runsOf(project, 'recover')).slice(-1);
    const recoverRun = (JSON.parse((await cli('--json', 'history')).stdout) as { result: Row[] }).result.find((r) => r.runId === recoverId)!;
    expect(settled.finishedAt).toBe(lastAt);
    expect(Date.parse(lastAt)).toBeLessThan(Date.parse(String(recoverRun.startedAt)));
    const took = ((Date.parse(lastAt) - Date.parse(String(settled.startedAt))) / 1000).toFixed(1);
    expect((await cli('history')).stdout.split('\n').find((line) => line.startsWith(runId!))).toMatch(new RegExp(` ${took.replace('.', '\\.')} s {2}migrate-up {3}interrupted `));
    expect((await cli('history', runId!)).stdout).toContain(`started ${String(settled.startedAt)}, last journaled ${lastAt}; interrupted`);
    // the database's copy of the journal is whole once the run is settled
    const file = stepLines(await journalOf(project, runId!));
    expect(await db.query(`SELECT count(*)::int AS n FROM belay.steps WHERE run_id = '${runId}'`)).toEqual([{ n: file.length }]);
    expect(await db.query(`SELECT last_step, to_revision FROM belay.runs WHERE id = '${runId}'`)).toEqual([{ last_step: 'apply 0004_slow', to_revision: '0003_b' }]);
    const one = payload((await cli('--json', 'history', runId!)).stdout);
    expect((one.steps as Row[]).map(label)).toEqual(file.map(label));
  }, 120_000);

  it('a rollback killed -9 inside the down of 0003 (0005 and 0004 reverted): refusal and status name "down 0003_b"; left at 0003', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...FIVE, '0004_slow.up.sql': 'CREATE TABLE slow (id int);', '0003_b.down.sql': 'DROP TABLE b;\nSELECT pg_sleep(30);' });
    const args = baseArgs(project, db.url);
    const cli = (...rest: string[]): Promise<CliRun> => belay([...args, ...rest], { cwd: project.dir });
    expect((await cli('migrate', 'up')).code).toBe(0);
    const run = startBelay([...args, '--yes', 'rollback', '--to', '0001', '--backup-scope', 'full'], { cwd: project.dir });
    await until('the down of 0003 running', sleeping(db, 'DROP TABLE b'), run.done);
    run.child.kill('SIGKILL');
    await run.done;
    const [runId] = (await runsOf(project, 'rollback')).slice(-1);
    const status = payload((await cli('--json', 'status')).stdout);
    expect(status.interrupted).toMatchObject({ interruptedAt: 'down 0003_b', run: { runId } });
    const refused = await cli('migrate', 'up');
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('interrupted at step "down 0003_b"');
    const history = (JSON.parse((await cli('--json', 'history')).stdout) as { result: Row[] }).result.find((r) => r.runId === runId)!;
    expect(history).toMatchObject({ fromRevision: '0005_c', toRevision: '0003_b', lastStep: 'down 0003_b' });
  }, 120_000);

  it('killed -9 in preflight, before anything changed: history says it left the database where it was', async () => {
    const db = await freshDatabase();
    const project = await makeProject(FIVE);
    const args = baseArgs(project, db.url);
    const cli = (...rest: string[]): Promise<CliRun> => belay([...args, ...rest], { cwd: project.dir });
    expect((await cli('migrate', 'up', '--to', '0001')).code).toBe(0);
    // the health baseline (preflight) holds the run until it is killed
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify({ health: { command: [{ name: 'waits', run: 'sleep 30', timeoutSeconds: 60 }] } }));
    const before = await runsOf(project, 'migrate-up');
    const run = startBelay([...args, 'migrate', 'up'], { cwd: project.dir });
    await until(
      'the health baseline',
      async () => (await runsOf(project, 'migrate-up')).length > before.length && stepLines(await journalOf(project, (await runsOf(project, 'migrate-up')).at(-1)!)).some((l) => l.subject === 'baseline'),
      run.done,
    );
    run.child.kill('SIGKILL');
    await run.done;
    const runId = (await runsOf(project, 'migrate-up')).at(-1)!;
    const runs = (JSON.parse((await cli('--json', 'history')).stdout) as { result: Row[] }).result;
    expect(runs.find((r) => r.runId === runId)).toMatchObject({ status: 'interrupted', finishedAt: null, fromRevision: '0001_base', toRevision: '0001_base' });
    const status = payload((await cli('--json', 'status')).stdout);
    expect(status.lastRun).toMatchObject({ runId, status: 'interrupted' });
    expect((status.interrupted as Row).run).toMatchObject({ runId, status: 'interrupted' });
    expect((await cli('--json', 'recover')).code).toBe(0);
    const after = (JSON.parse((await cli('--json', 'history')).stdout) as { result: Row[] }).result;
    expect(after.find((r) => r.runId === runId)).toMatchObject({ status: 'interrupted', fromRevision: '0001_base', toRevision: '0001_base' });
  }, 120_000);

  it('while the backup scope is learned on its throwaway copy, status names that step, not the health baseline before it', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...BASE, '0002_slow.up.sql': 'CREATE TABLE slow (id int);\nSELECT pg_sleep(5);', '0002_slow.down.sql': 'DROP TABLE slow;' });
    const args = baseArgs(project, db.url);
    const cli = (...rest: string[]): Promise<CliRun> => belay([...args, ...rest], { cwd: project.dir });
    expect((await cli('migrate', 'up', '--to', '0001')).code).toBe(0);
    const run = startBelay([...args, 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    // the revision sleeping on the copy (another database), not on the target
    await until('0002 running on the scope copy', async () =>
      (await db.query("SELECT 1 FROM pg_stat_activity WHERE datname <> current_database() AND state = 'active' AND query LIKE '%pg_sleep(5)%' AND query NOT LIKE '%pg_stat_activity%'")).length > 0, run.done);
    const status = payload((await cli('--json', 'status')).stdout);
    expect(status.lock).toMatchObject({ run: { command: 'migrate-up', lastStep: 'scope' } });
    expect((await cli('status')).stdout).toContain('at step scope)');
    const done = await run.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toMatch(/· scope \.+ ok/);
    const runId = (await runsOf(project, 'migrate-up')).at(-1)!;
    const steps = stepLines(await journalOf(project, runId));
    expect(steps.find((l) => l.step === 'scope' && l.event === 'end')).toMatchObject({ outcome: 'ok', detail: { tables: [], unknown: null } });
    const one = payload((await cli('--json', 'history', runId)).stdout);
    expect((one.steps as Row[]).map(label)).toEqual(steps.map(label));
  }, 120_000);

  it('recover after a kill during pg_dump, before the fingerprint ended: never "verified", it says the data was not compared', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_base.up.sql': "CREATE TABLE base (id int PRIMARY KEY, v text);\nINSERT INTO base SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 400000) g;",
      '0001_base.down.sql': 'DROP TABLE base;',
      '0002_x.up.sql': 'CREATE TABLE x (id int);',
      '0002_x.down.sql': 'DROP TABLE x;',
    });
    const args = baseArgs(project, db.url);
    const cli = (...rest: string[]): Promise<CliRun> => belay([...args, ...rest], { cwd: project.dir });
    expect((await cli('migrate', 'up', '--to', '0001')).code).toBe(0);
    // another session holds base, so that neither the fingerprint nor pg_dump can end before the kill, however fast the machine
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    await holder.query('BEGIN; LOCK TABLE base IN ACCESS EXCLUSIVE MODE');
    const run = startBelay([...args, 'migrate', 'up', '--with-backup', '--backup-scope', 'full'], { cwd: project.dir });
    await until('pg_dump waiting for base', async () => (await db.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'belay' AND datname = current_database() AND wait_event_type = 'Lock'")).length > 0, run.done);
    run.child.kill('SIGKILL');
    await run.done;
    await holder.query('ROLLBACK');
    await holder.end();
    const runId = (await runsOf(project, 'migrate-up')).at(-1)!;
    // the case: the fingerprint had not ended when the run was killed
    expect(stepLines(await journalOf(project, runId)).some((l) => l.step === 'fingerprint' && l.event === 'end')).toBe(false);
    const recover = await cli('--json', 'recover');
    expect(recover.code, recover.stderr).toBe(0);
    const result = payload(recover.stdout);
    expect(result.message).not.toMatch(/verified/);
    expect(result.message).toMatch(/data not compared: the run's fingerprint was never taken/);
    const outcome = (await journalOf(project, result.runId as string)).find((l) => l.type === 'outcome')!;
    expect((outcome.summary as Row).message).toBe(result.message);
  }, 120_000);
});

/** Its own server, to stop it under a run. */
describe('the server stops under a run: history tells what the run journaled', () => {
  let server: TempCluster;
  let n = 0;
  const restart = async (): Promise<void> => {
    const log = join(server.root, 'server.log');
    await prepareLogFile(log);
    await startCluster(server.spec, log);
  };
  const client = (database: string): pg.Client => new pg.Client({ host: server.spec.socketDir, port: server.spec.port, user: 'postgres', database });
  const query = async (database: string, sql: string): Promise<Row[]> => {
    const c = client(database);
    await c.connect();
    try {
      return (await c.query(sql)).rows as Row[];
    } finally {
      await c.end();
    }
  };
  const sleeping = (db: string) => async (): Promise<boolean> =>
    (await query(db, "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE '%pg_sleep(30)%' AND query NOT LIKE '%pg_stat_activity%'")).length > 0;

  beforeAll(async () => {
    server = await startStoppableCluster('belay-history-');
  }, 120_000);
  afterAll(() => server?.remove());

  it('stopped inside a revision, then a recover stopped inside a down: each run shows its own exit 12, where it left the database and every step', async () => {
    const db = `hist_${++n}`;
    await query('postgres', `CREATE DATABASE ${quoteIdent(db)}`);
    const project = await makeProject({ ...FIVE, '0002_a.down.sql': 'DROP TABLE a;\nSELECT pg_sleep(30);' });
    const url = `postgresql://postgres@/${db}?host=${encodeURIComponent(server.spec.socketDir)}&port=${server.spec.port}`;
    const args = ['--database-url', url, '--migrations', project.migrations, '--backups', project.backups];
    const cli = (...rest: string[]): Promise<CliRun> => belay([...args, ...rest], { cwd: project.dir });
    expect((await cli('migrate', 'up', '--to', '0001')).code).toBe(0);

    const stopUnder = async (command: string[]): Promise<CliRun> => {
      const run = startBelay([...args, ...command], { cwd: project.dir });
      await until('pg_sleep(30)', sleeping(db), run.done);
      await stopCluster(server.spec, 'immediate');
      const ended = await run.done;
      await restart();
      return ended;
    };
    const up = await stopUnder(['migrate', 'up', '--with-backup', '--backup-scope', 'full']);
    expect(up.code, up.stderr).toBe(12);
    expect(`${up.stdout}${up.stderr}`).toMatch(/next: .*belay recover/);
    const upId = (await runsOf(project, 'migrate-up')).at(-1)!;
    const upOutcome = (await journalOf(project, upId)).find((l) => l.type === 'outcome')!;
    expect(upOutcome).toMatchObject({ status: 'manual-action-needed', exitCode: 12, toRevision: '0003_b' });

    const recover = await stopUnder(['recover']);
    expect(recover.code, recover.stderr).toBe(12);
    const recoverId = (await runsOf(project, 'recover')).at(-1)!;
    expect((await journalOf(project, recoverId)).find((l) => l.type === 'outcome')).toMatchObject({ status: 'manual-action-needed', exitCode: 12 });

    const settled = await cli('--json', 'recover');
    expect([0, 10], settled.stderr).toContain(settled.code);
    expect((await query(db, 'SELECT name FROM belay.migrations ORDER BY name')).map((r) => r.name)).toEqual(['0001_base']);

    const runs = (JSON.parse((await cli('--json', 'history')).stdout) as { result: Row[] }).result;
    // what each run printed and journaled, where it left the database
    // stopped inside 0004, its rollback could not reach the server either: the restore it tried is the last step it began
    const upSteps = stepLines(await journalOf(project, upId));
    expect(upSteps.map(label)).toContain('apply 0004_slow');
    expect(runs.find((r) => r.runId === upId)).toMatchObject({ status: 'manual-action-needed', exitCode: 12, fromRevision: '0001_base', toRevision: '0003_b', lastStep: label(upSteps.findLast((l) => l.event === 'start')!) });
    expect(runs.find((r) => r.runId === recoverId)).toMatchObject({ status: 'manual-action-needed', exitCode: 12 });
    for (const id of [upId, recoverId]) {
      const file = stepLines(await journalOf(project, id));
      const one = await cli('--json', 'history', id);
      expect(one.code, one.stderr).toBe(0);
      expect((payload(one.stdout).steps as Row[]).map(label), id).toEqual(file.map(label));
      // the database's copy is whole again once the runs are settled
      expect(await query(db, `SELECT count(*)::int AS n FROM belay.steps WHERE run_id = '${id}'`)).toEqual([{ n: file.length }]);
    }
    const human = await cli('history');
    expect(human.stdout).toMatch(new RegExp(`${upId} .*manual-action-needed exit 12  0001_base → 0003_b`));
    const status = payload((await cli('--json', 'status')).stdout);
    expect(status.interrupted).toBeNull();
  }, 180_000);

  it('stopped inside a revision: status names the last step the journal file began, which the database copy missed, as recover does', async () => {
    const db = `hist_${++n}`;
    await query('postgres', `CREATE DATABASE ${quoteIdent(db)}`);
    const project = await makeProject(FIVE);
    const url = `postgresql://postgres@/${db}?host=${encodeURIComponent(server.spec.socketDir)}&port=${server.spec.port}`;
    const args = ['--database-url', url, '--migrations', project.migrations, '--backups', project.backups];
    const cli = (...rest: string[]): Promise<CliRun> => belay([...args, ...rest], { cwd: project.dir });
    expect((await cli('migrate', 'up', '--to', '0001')).code).toBe(0);
    const run = startBelay([...args, 'migrate', 'up', '--with-backup', '--backup-scope', 'full'], { cwd: project.dir });
    await until('pg_sleep(30)', sleeping(db), run.done);
    await stopCluster(server.spec, 'immediate');
    expect((await run.done).code).toBe(12);
    await restart();
    const runId = (await runsOf(project, 'migrate-up')).at(-1)!;
    const last = label(stepLines(await journalOf(project, runId)).findLast((l) => l.event === 'start')!);
    // the case: the database's copy of the journal did not see that step begin
    expect(await query(db, `SELECT last_step FROM belay.runs WHERE id = '${runId}'`)).not.toEqual([{ last_step: last }]);
    expect(payload((await cli('--json', 'status')).stdout).interrupted).toMatchObject({ interruptedAt: last, run: { runId, lastStep: last } });
    expect((await cli('status')).stdout).toContain(`stopped at "${last}"`);
    const recover = payload((await cli('--json', 'recover')).stdout);
    expect(recover.message).toContain(`"${last}"`);
  }, 180_000);
});
