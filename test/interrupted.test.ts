import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult, startBelay } from './support/cli.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';
import { pollUntil } from './support/kill.js';

const REVISIONS: Record<string, string> = {
  '0001_base.up.sql': "CREATE TABLE base (id int PRIMARY KEY, v text);\nINSERT INTO base SELECT g, md5(g::text) FROM generate_series(1, 2000) g;",
  '0001_base.down.sql': 'DROP TABLE base;',
  '0002_a.up.sql': 'CREATE TABLE a (id int);',
  '0002_a.down.sql': 'DROP TABLE a;',
  '0003_slow.up.sql': 'ALTER TABLE base ADD COLUMN c int;\nSELECT pg_sleep(1.5);',
  '0003_slow.down.sql': 'ALTER TABLE base DROP COLUMN c;\nSELECT pg_sleep(1.5);',
  '0004_b.up.sql': 'CREATE TABLE b (id int);',
  '0004_b.down.sql': 'DROP TABLE b;',
};

// Healthy before the change, unhealthy after 0004: every forward run also walks the rollback path.
const FAILING_AFTER_APPLY = {
  health: { sql: [{ name: 'no table b', query: "SELECT 1 FROM pg_tables WHERE tablename = 'b'", expect: 'no-rows' }], timeoutSeconds: 0.5, intervalSeconds: 0.2 },
};

const label = (line: Record<string, unknown>): string => [line.step, line.revision ?? line.subject].filter(Boolean).join(' ');

/** Start belay, SIGKILL it when its journal says `point` started (plus `delayMs`), and wait for it to die. */
async function killAt(project: TestProject, args: string[], point: string, delayMs = 0): Promise<boolean> {
  const dir = join(project.backups, 'journal');
  const before = new Set(await readdir(dir).catch(() => []));
  const run = startBelay(args, { cwd: project.dir });
  let exited = false;
  void run.done.then(() => (exited = true));
  for (let i = 0; i < 3000 && !exited; i++) {
    const fresh = (await readdir(dir).catch(() => [] as string[])).filter((f) => !before.has(f));
    if (fresh[0]) {
      const text = await readFile(join(dir, fresh[0]), 'utf8').catch(() => '');
      // the last line may be caught half written
      const lines = text.split('\n').filter(Boolean).flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
      if (lines.some((l) => l.type === 'step' && l.event === 'start' && label(l) === point)) {
        if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
        run.child.kill('SIGKILL');
        await run.done;
        return true;
      }
    }
    await new Promise((r) => setTimeout(r, 3));
  }
  await run.done;
  return false;
}

async function digest(db: TestDatabase): Promise<unknown> {
  return db.query("SELECT count(*)::int AS n, md5(string_agg(id || ':' || v, ',' ORDER BY id)) AS h FROM base");
}

async function appliedNames(db: TestDatabase): Promise<string[]> {
  return (await db.query('SELECT name FROM belay.migrations ORDER BY name')).map((r) => String(r.name));
}

async function recoverAndCheck(project: TestProject, db: TestDatabase): Promise<number> {
  const args = baseArgs(project, db.url);
  const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
  expect([0, 10, 11], `${recover.stdout}\n${recover.stderr}`).toContain(recover.code);
  const status = jsonResult(await belay([...args, '--json', 'status'], { cwd: project.dir })) as { interrupted: unknown; lock: unknown };
  expect(status.interrupted).toBeNull();
  expect(status.lock).toBeNull();
  return recover.code!;
}

const FORWARD_POINTS: Array<[string, number]> = [
  ['plan', 0],
  ['preflight', 0],
  ['health baseline', 0],
  ['fingerprint', 0],
  ['backup', 0],
  ['apply 0002_a', 0],
  ['apply 0003_slow', 0],
  ['apply 0003_slow', 600],
  ['apply 0004_b', 0],
  ['health after-apply', 0],
  ['down 0004_b', 0],
  ['down 0003_slow', 600],
  ['down 0002_a', 0],
  ['health after-rollback', 0],
  ['integrity', 0],
];

const ROLLBACK_POINTS: Array<[string, number]> = [
  ['plan', 0],
  ['preflight', 0],
  ['fingerprint', 0],
  ['backup', 0],
  ['down 0004_b', 0],
  ['down 0003_slow', 600],
  ['down 0002_a', 0],
  ['health after-rollback', 0],
  ['integrity', 0],
];

/** 0002 is committed before a kill in 0003; its down forgets the function its up made. */
const FORGETS_STAMP = {
  '0001_base.up.sql': REVISIONS['0001_base.up.sql']!,
  '0001_base.down.sql': REVISIONS['0001_base.down.sql']!,
  '0002_stamp.up.sql': "CREATE FUNCTION stamp() RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;\nCREATE TABLE stamped (id int);",
  '0002_stamp.down.sql': 'DROP TABLE stamped;',
  '0003_slow.up.sql': REVISIONS['0003_slow.up.sql']!,
  '0003_slow.down.sql': REVISIONS['0003_slow.down.sql']!,
};

describe('interrupted runs and `belay recover`', () => {
  it('SIGKILL at every step boundary of `migrate up --with-backup`: recover brings the database back to 0001 with every row', async () => {
    let covered = 0;
    for (const [point, delay] of FORWARD_POINTS) {
      const db = await freshDatabase();
      const project = await makeProject(REVISIONS, FAILING_AFTER_APPLY);
      const args = baseArgs(project, db.url);
      expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
      const before = await digest(db);
      const killed = await killAt(project, [...args, 'migrate', 'up', '--with-backup'], point, delay);
      expect(killed, `reached ${point}`).toBe(true);
      // a fresh command is not blocked by the dead run's lock, and refuses new work until it is settled
      const blocked = await belay([...args, 'migrate', 'up'], { cwd: project.dir });
      expect(blocked.code === 4 || blocked.code === 10, `${point}: ${blocked.stderr}`).toBe(true);
      if (blocked.code === 4) {
        expect(blocked.stderr).toMatch(/was interrupted at step .* has not been settled/);
        await recoverAndCheck(project, db);
      }
      expect(await appliedNames(db), point).toEqual(['0001_base']);
      expect(await digest(db), point).toEqual(before);
      expect(await db.query("SELECT to_regclass('a') AS a, to_regclass('b') AS b"), point).toEqual([{ a: null, b: null }]);
      covered++;
    }
    console.log(`migrate up: covered ${covered} kill points`);
    expect(covered).toBe(FORWARD_POINTS.length);
  }, 400_000);

  it('SIGKILL at every step boundary of `rollback --to 0001`: recover finishes the rollback with every row', async () => {
    let covered = 0;
    for (const [point, delay] of ROLLBACK_POINTS) {
      const db = await freshDatabase();
      const project = await makeProject(REVISIONS);
      const args = baseArgs(project, db.url);
      expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
      const before = await db.query("SELECT count(*)::int AS n, md5(string_agg(id || ':' || v, ',' ORDER BY id)) AS h FROM base");
      const killed = await killAt(project, [...args, '--yes', 'rollback', '--to', '0001'], point, delay);
      expect(killed, `reached ${point}`).toBe(true);
      await recoverAndCheck(project, db);
      // finished to its target; or, killed before it changed anything (or restored), where it started
      expect([['0001_base'], ['0001_base', '0002_a', '0003_slow', '0004_b']], point).toContainEqual(await appliedNames(db));
      expect(await digest(db), point).toEqual(before);
      covered++;
    }
    console.log(`rollback: covered ${covered} kill points`);
    expect(covered).toBe(ROLLBACK_POINTS.length);
  }, 400_000);

  it('a down that left something behind before the kill is still named by the recover that finishes the rollback', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_base.up.sql': REVISIONS['0001_base.up.sql']!,
      '0001_base.down.sql': REVISIONS['0001_base.down.sql']!,
      '0002_slow.up.sql': REVISIONS['0003_slow.up.sql']!,
      // killed in its last statement, its session goes on (no connection check to notice the kill) and would commit
      // the down with its record under recover: recover ends it first
      '0002_slow.down.sql': 'SET client_connection_check_interval = 0;\nALTER TABLE base DROP COLUMN c;\nSELECT pg_sleep(4);',
      // the first down to run, and done before the kill: it forgets the function
      '0003_stamp.up.sql': "CREATE FUNCTION stamp() RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;\nCREATE TABLE stamped (id int);",
      '0003_stamp.down.sql': 'DROP TABLE stamped;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
    expect(await killAt(project, [...args, '--yes', 'rollback', '--to', '0001'], 'down 0002_slow', 600)).toBe(true);
    expect(await appliedNames(db)).toEqual(['0001_base', '0002_slow']);
    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, `${recover.stdout}\n${recover.stderr}`).toBe(12);
    expect((jsonResult(recover) as { message: string }).message).toContain('but the schema is not the one 0001_base left: 1 object(s) differ (+ left behind, - missing, ~ changed): + function public.stamp()');
    expect(await appliedNames(db)).toEqual(['0001_base']);
    const journal = await readFile(join(project.backups, 'journal', `${(jsonResult(recover) as { runId: string }).runId}.jsonl`), 'utf8');
    expect(journal).toMatch(/"step":"lock","event":"note",.*"ended 1 session\(s\) the interrupted run left on the server/);
    // put right by hand, the next recover settles the run against the same record
    await db.appQuery('DROP FUNCTION stamp()');
    const settled = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(settled.code, settled.stderr).toBe(0);
    expect((jsonResult(settled) as { message: string }).message).toMatch(/schema as recorded at 0001_base(?! \(compared)/);
    expect((jsonResult(await belay([...args, '--json', 'status'], { cwd: project.dir })) as { interrupted: unknown }).interrupted).toBeNull();
  }, 120_000);

  it('recover settling a killed `migrate up` names what a down left behind: exit 12, never "data verified intact"', async () => {
    const db = await freshDatabase();
    const project = await makeProject(FORGETS_STAMP);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    expect(await killAt(project, [...args, 'migrate', 'up'], 'apply 0003_slow', 600)).toBe(true);
    expect(await appliedNames(db)).toEqual(['0001_base', '0002_stamp']);
    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, `${recover.stdout}\n${recover.stderr}`).toBe(12);
    const { message } = jsonResult(recover) as { message: string };
    expect(message).toContain('but the schema is not the one 0001_base left: 1 object(s) differ (+ left behind, - missing, ~ changed): + function public.stamp()');
    expect(message).not.toContain('intact');
    expect(await appliedNames(db)).toEqual(['0001_base']);
    expect(await db.query("SELECT to_regprocedure('public.stamp()') IS NOT NULL AS left")).toEqual([{ left: true }]);
  }, 120_000);

  it('a recover killed after the downs it ran: the next recover still names what one of them left behind (exit 12), never "data verified intact"', async () => {
    const db = await freshDatabase();
    const project = await makeProject(FORGETS_STAMP);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    expect(await killAt(project, [...args, 'migrate', 'up'], 'apply 0003_slow', 600)).toBe(true);
    expect(await killAt(project, [...args, 'recover'], 'health after-rollback')).toBe(true);
    expect(await appliedNames(db)).toEqual(['0001_base']);
    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, `${recover.stdout}\n${recover.stderr}`).toBe(12);
    const { message } = jsonResult(recover) as { message: string };
    expect(message).toContain('+ function public.stamp()');
    expect(message).not.toContain('intact');
  }, 120_000);

  it('a rejected `migrate up` killed during its downs: the recover that finishes them still names what an earlier down left behind', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_base.up.sql': REVISIONS['0001_base.up.sql']!,
      '0001_base.down.sql': REVISIONS['0001_base.down.sql']!,
      '0002_slow.up.sql': REVISIONS['0003_slow.up.sql']!,
      '0002_slow.down.sql': 'SET client_connection_check_interval = 0;\nALTER TABLE base DROP COLUMN c;\nSELECT pg_sleep(4);',
      // the first down to run, and done before the kill: it forgets the function
      '0003_stamp.up.sql': "CREATE FUNCTION stamp() RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;\nCREATE TABLE stamped (id int);",
      '0003_stamp.down.sql': 'DROP TABLE stamped;',
      '0004_bad.up.sql': 'SELECT 1/0;',
      '0004_bad.down.sql': 'SELECT 1;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    expect(await killAt(project, [...args, 'migrate', 'up'], 'down 0002_slow', 600)).toBe(true);
    expect(await appliedNames(db)).toEqual(['0001_base', '0002_slow']);
    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, `${recover.stdout}\n${recover.stderr}`).toBe(12);
    expect((jsonResult(recover) as { message: string }).message).toContain('but the schema is not the one 0001_base left: 1 object(s) differ (+ left behind, - missing, ~ changed): + function public.stamp()');
    expect(await appliedNames(db)).toEqual(['0001_base']);
  }, 120_000);

  it('a session of the interrupted run that recover may not end is waited for: exit 3 while it runs, settled once it ended', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_base.up.sql': REVISIONS['0001_base.up.sql']!,
      '0001_base.down.sql': REVISIONS['0001_base.down.sql']!,
      '0002_slow.up.sql': REVISIONS['0003_slow.up.sql']!,
      // killed while its last statement waits for a lock this test holds: the session outlives the runner
      '0002_slow.down.sql': 'SET client_connection_check_interval = 0;\nSET lock_timeout = 0;\nSET statement_timeout = 0;\nALTER TABLE base DROP COLUMN c;\nSELECT pg_advisory_xact_lock(4242);',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
    const holder = new pg.Client({ connectionString: db.adminUrl });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock(4242)');
      // the rollback runs as the superuser, whose sessions the application role may not end
      expect(await killAt(project, [...baseArgs(project, db.adminUrl), '--yes', 'rollback', '--to', '0001'], 'down 0002_slow', 300)).toBe(true);
      // it waits 10 s, then stops; a recover that ran the down instead would wait on the session's lock
      const refused = await belay([...args, '--json', 'recover'], { cwd: project.dir, timeoutMs: 40_000 });
      expect(refused.code, `${refused.stdout}\n${refused.stderr}`).toBe(3);
      const envelope = JSON.parse(refused.stdout) as { message: string; next: string; result: { error: string; details: { pids: number[] } } };
      expect(envelope.message).toMatch(/the interrupted run's session\(s\) \d+ still run on the server, and may still change the database/);
      expect(envelope.next).toContain('Nothing was changed.');
      expect(envelope.result).toEqual({ error: 'locked', details: { pids: [expect.any(Number)] } });
      expect(await appliedNames(db)).toEqual(['0001_base', '0002_slow']);
      expect((jsonResult(await belay([...args, '--json', 'status'], { cwd: project.dir })) as { interrupted: unknown }).interrupted).not.toBeNull();

      const settling = startBelay([...args, '--json', 'recover'], { cwd: project.dir });
      // let the session go once recover is waiting for it
      await pollUntil(
        async () => (await db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND starts_with(application_name, 'belay recover') AND starts_with(query, 'SELECT pid FROM pg_catalog.pg_stat_activity WHERE pid = ANY')")).length > 0,
        'recover waiting for the session',
      );
      await holder.query('SELECT pg_advisory_unlock(4242)');
      const settled = await settling.done;
      expect(settled.code, `${settled.stdout}\n${settled.stderr}`).toBe(0);
      // the session committed the down it was killed in, which recover had waited for instead of reading past it
      expect(await appliedNames(db)).toEqual(['0001_base']);
      expect(await db.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'base' ORDER BY column_name")).toEqual([{ column_name: 'id' }, { column_name: 'v' }]);
      const journal = await readFile(join(project.backups, 'journal', `${(jsonResult(settled) as { runId: string }).runId}.jsonl`), 'utf8');
      expect(journal).toMatch(/"step":"lock","event":"note",.*"waited for 1 session\(s\) the interrupted run left on the server \(pid \d+\) to end \(this role may not end them\)"/);
      expect(journal).not.toMatch(/"ended 1 session/);
    } finally {
      await holder.end();
    }
  }, 120_000);

  it('SIGINT mid-run rolls back what the run did (exit 10)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(REVISIONS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const run = startBelay([...args, '--json', 'migrate', 'up'], { cwd: project.dir });
    const journalDir = join(project.backups, 'journal');
    for (let i = 0; i < 2000; i++) {
      const files = await readdir(journalDir).catch(() => [] as string[]);
      const text = files.length > 1 ? await readFile(join(journalDir, files.sort()[1]!), 'utf8') : '';
      if (text.includes('"start","revision":"0003_slow"') || /"event":"start","revision":"0003_slow"/.test(text)) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 300));
    run.child.kill('SIGINT');
    const result = await run.done;
    expect(result.code, result.stderr).toBe(10);
    expect(jsonResult(result).message).toMatch(/interrupted by a signal/);
    // the revision the signal cancelled failed where the text output says: --json carries it too
    expect(jsonResult(result).failure).toMatchObject({ file: '0003_slow.up.sql', line: 2, sqlstate: '57014' });
    expect(await appliedNames(db)).toEqual(['0001_base']);
    const status = jsonResult(await belay([...args, '--json', 'status'], { cwd: project.dir })) as { interrupted: unknown };
    expect(status.interrupted).toBeNull();
  });

  it('a live runner still holds the lock (exit 3); recover with nothing to do says so', async () => {
    const db = await freshDatabase();
    const project = await makeProject(REVISIONS);
    const args = baseArgs(project, db.url);
    const live = startBelay([...args, 'migrate', 'up'], { cwd: project.dir });
    for (let i = 0; i < 400; i++) {
      const held = await db.query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
      if (held.length > 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const second = await belay([...args, 'recover'], { cwd: project.dir });
    expect(second.code).toBe(3);
    expect((await live.done).code).toBe(0);
    const nothing = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(nothing.code).toBe(0);
    expect(jsonResult(nothing).message).toBe('no interrupted run: nothing to recover');
  });
});
