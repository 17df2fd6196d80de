import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult } from './support/cli.js';
import { adminQuery, freshDatabase } from './support/pg.js';
import { quoteIdent } from '../src/db/ident.js';
import { baseArgs, makeProject } from './support/project.js';
import { TEST_APP_ROLE } from './support/constants.js';

interface Result {
  outcome: string;
  exitCode: number;
  message: string;
  hint?: string;
}

const ORDERS = {
  '0001_t.up.sql': 'CREATE TABLE t (id int PRIMARY KEY);\nINSERT INTO t SELECT generate_series(1, 10);',
  '0001_t.down.sql': 'DROP TABLE t;',
};

const HALFWAY = {
  '0002_nt.up.sql': '-- belay:no-transaction\nCREATE TABLE nt (id int);\nCREATE INDEX CONCURRENTLY nt_missing ON nt (no_such_column);',
  '0002_nt.down.sql': 'DROP TABLE nt;',
};

describe('results say what happened', () => {
  it('a change between values their type calls equal is data damage: citext emails lowercased by an up its down cannot undo restore the snapshot (exit 11; it was exit 10, "data verified intact")', async () => {
    const db = await freshDatabase();
    const project = await makeProject(
      {
        '0001_users.up.sql': 'CREATE EXTENSION IF NOT EXISTS citext;\nCREATE TABLE users (id int PRIMARY KEY, email citext NOT NULL);',
        '0001_users.down.sql': 'DROP TABLE users;',
        '0002_normalise.up.sql': 'UPDATE users SET email = lower(email);\nCREATE TABLE audit (id int);',
        '0002_normalise.down.sql': 'DROP TABLE audit;',
      },
      { health: { sql: [{ name: 'no audit table', query: "SELECT 1 FROM pg_tables WHERE tablename = 'audit'", expect: 'no-rows' }], timeoutSeconds: 0.3, intervalSeconds: 0.1 } },
    );
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    await db.query("INSERT INTO users VALUES (1, 'Alice@Example.COM'), (2, 'Bob.Smith@example.com')");
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(11);
    expect(jsonResult<Result>(run).message).toMatch(/restored/);
    expect(await db.query('SELECT id, email::text AS email FROM users ORDER BY id')).toEqual([
      { id: 1, email: 'Alice@Example.COM' },
      { id: 2, email: 'Bob.Smith@example.com' },
    ]);
  });

  it("status's last run is the run history lists first, a run only its journal file tells of included (up to date, refused)", async () => {
    const db = await freshDatabase();
    const project = await makeProject(ORDERS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const lastRun = async (): Promise<{ status: { runId: string; status: string }; history: { runId: string; status: string } }> => {
      const status = jsonResult<{ lastRun: { runId: string; status: string } }>(await belay([...args, '--json', 'status']));
      const history = jsonResult<Array<{ runId: string; status: string }>>(await belay([...args, '--json', 'history']));
      return { status: status.lastRun, history: history[0]! };
    };
    // nothing to apply: the run ends before it writes in the database
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const upToDate = await lastRun();
    expect(upToDate.history.status).toBe('up-to-date');
    expect(upToDate.status).toMatchObject({ runId: upToDate.history.runId, status: 'up-to-date' });
    // refused in preflight: a missing revision file
    await rm(join(project.migrations, '0001_t.down.sql'));
    await rm(join(project.migrations, '0001_t.up.sql'));
    await writeFile(join(project.migrations, '0002_u.up.sql'), 'CREATE TABLE u (id int);');
    await writeFile(join(project.migrations, '0002_u.down.sql'), 'DROP TABLE u;');
    const refusedRun = await belay([...args, 'migrate', 'up']);
    expect(refusedRun.code, refusedRun.stderr).toBe(4);
    const refused = await lastRun();
    expect(refused.history.status).toBe('refused');
    expect(refused.status).toMatchObject({ runId: refused.history.runId, status: 'refused' });
  });

  it("a non-transactional revision that fails halfway: PostgreSQL's error is in the final line", async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...ORDERS, ...HALFWAY });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const run = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stderr).toBe(11);
    const final = run.stdout.split('\n').find((line) => line.startsWith('migrate-up: '))!;
    expect(final).toContain('0002_nt up failed at 0002_nt.up.sql:3: column "no_such_column" does not exist [SQLSTATE 42703]');
    expect(run.stdout).toContain('a revision that runs outside a transaction failed halfway');
    expect(run.stdout).toMatch(/restored \S+ into/);
    const noBackup = await belay([...args, '--json', 'migrate', 'up']);
    expect(noBackup.code).toBe(12);
    const result = jsonResult<Result & { failure: { statement: string }; messageDetails: string[] }>(noBackup);
    // one line (docs/json.md); the statement beside it
    expect(result.message).toMatch(/^0002_nt up failed at 0002_nt\.up\.sql:3: column "no_such_column" does not exist \[SQLSTATE 42703\]; /);
    expect(result.message).not.toContain('\n');
    expect(result.messageDetails).toEqual([expect.stringMatching(/^statement: CREATE INDEX CONCURRENTLY nt_missing/)]);
    expect(result.message).toContain('a revision that runs outside a transaction failed halfway');
    expect(result.failure.statement).toContain('CREATE INDEX CONCURRENTLY nt_missing');
  });

  it('a run restored back to the start shows ∅ → ∅ in history, not the revision it aimed at', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...ORDERS, ...HALFWAY });
    const args = baseArgs(project, db.url);
    const run = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stderr).toBe(11);
    const history = await belay([...args, 'history']);
    expect(history.stdout).toMatch(/migrate-up\s+restored\s+exit 11  ∅ → ∅  db /);
    expect((await db.query<{ to_revision: string | null }>('SELECT to_revision FROM belay.runs'))).toEqual([{ to_revision: null }]);
  });

  it('every exit-10 result ends with next:', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...ORDERS, '0002_bad.up.sql': 'CREATE TABLE b (id int);\nSELECT 1/0;', '0002_bad.down.sql': 'DROP TABLE b;' });
    const args = baseArgs(project, db.url);
    const run = await belay([...args, 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(10);
    const lines = run.stdout.trimEnd().split('\n').filter((line) => !line.startsWith('target '));
    expect(lines.at(-1)).toMatch(/^ {2}next: Fix what was rejected \(`belay history [0-9a-f-]{36}` shows every step\), then run `belay migrate up` again\.$/);
    expect(jsonResult<Result>(await belay([...args, '--json', 'migrate', 'up'])).hint).toMatch(/^Fix what was rejected/);
  });

  it('a bug (exit 1) after the run changed the database says to run `belay recover`, and names the run it left', async () => {
    const db = await freshDatabase();
    // a module that breaks what belay itself uses once its up ended: a real exit 1 in the middle of a run
    const breaks = "export async function up(ctx) { await ctx.sql('CREATE TABLE brk (id int)'); Date.prototype.toISOString = () => { throw new Error('Date broken by a module'); }; }\nexport async function down(ctx) { await ctx.sql('DROP TABLE brk'); }\n";
    const project = await makeProject({ ...ORDERS, '0002_breaks.mjs': breaks });
    const args = baseArgs(project, db.url);
    const run = await belay([...args, '--json', 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(1);
    const said = JSON.parse(run.stdout) as { outcome: string; next: string; journal: string; result: { details: { runId: string } } };
    expect(said.outcome).toBe('internal-error');
    const { runId } = said.result.details;
    expect(said.next).toContain(`The run ${runId} changed the database and did not finish`);
    expect(said.next).toContain('`belay recover`');
    expect(said.journal).toContain(runId);
    expect(await db.query('SELECT status FROM belay.runs WHERE id = $1', [runId])).toEqual([{ status: 'running' }]);

    const recover = await belay([...args, 'recover']);
    expect(recover.code, recover.stderr).toBe(10);
    expect(await db.query("SELECT to_regclass('t') IS NULL AS t_gone, to_regclass('brk') IS NULL AS brk_gone")).toEqual([{ t_gone: true, brk_gone: true }]);

    // the same in text, after the trace
    const text = await belay([...args, 'migrate', 'up']);
    expect(text.code).toBe(1);
    expect(text.stderr).toMatch(/\n {2}next: The run [0-9a-f-]{36} changed the database and did not finish/);
  });

  it('migrate up --to a revision the database is past says so and names the command that goes down; an empty run or snapshot argument is refused', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...ORDERS, '0002_b.up.sql': 'CREATE TABLE b (id int);', '0002_b.down.sql': 'DROP TABLE b;' });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const past = jsonResult<Result>(await belay([...args, '--json', 'migrate', 'up', '--to', '0001']));
    expect(past).toMatchObject({ outcome: 'up-to-date', exitCode: 0, message: 'already at 0002_b, past --to 0001_t; nothing to apply' });
    expect(past.hint).toContain('`belay rollback --to 0001_t`');
    expect(await db.query("SELECT to_regclass('b') IS NOT NULL AS b")).toEqual([{ b: true }]);

    for (const command of [['history', ''], ['restore', '', '--yes'], ['backups', 'verify', '']]) {
      const run = await belay([...args, ...command]);
      expect(run.code, `${command.join(' ')}: ${run.stderr}`).toBe(2);
      expect(run.stderr).toMatch(/no (run|snapshot) was named: the argument is empty\n {2}next: Name a/);
    }
  });

  it('a CYCLE sequence that nextval wraps round during a rejected run is no damage: rolled back, data verified intact (it was a restore: "set back")', async () => {
    const db = await freshDatabase();
    const project = await makeProject(
      {
        ...ORDERS,
        '0002_wrap.up.sql': "SELECT nextval('cyc') FROM generate_series(1, 4);\nCREATE TABLE breakme (id int);",
        '0002_wrap.down.sql': 'DROP TABLE breakme;',
      },
      { health: { sql: [{ name: 'no breakme', query: "SELECT 1 FROM pg_tables WHERE tablename = 'breakme'", expect: 'no-rows' }], timeoutSeconds: 0 } },
    );
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    await db.query(`CREATE SEQUENCE cyc MINVALUE 1 MAXVALUE 5 CYCLE; ALTER SEQUENCE cyc OWNER TO ${TEST_APP_ROLE}; SELECT nextval('cyc') FROM generate_series(1, 3)`);
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(10);
    expect(jsonResult<Result>(run).message).toMatch(/rolled back to 0001_t, data verified intact/);
    expect(await db.query('SELECT last_value::int AS v FROM cyc')).toEqual([{ v: 2 }]);
  });

  // the row hash covers the columns the table had before: a column the down forgot is the schema's difference, not the data's
  const FORGOTTEN_COLUMN = {
    '0001_users.up.sql': "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);\nINSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 20) g;",
    '0001_users.down.sql': 'DROP TABLE users;',
    '0002_nick.up.sql': "ALTER TABLE users ADD COLUMN nick text NOT NULL DEFAULT 'anon';\nCREATE TABLE breakme (id int);",
    '0002_nick.down.sql': 'DROP TABLE breakme;',
  };
  const NO_BREAKME = { health: { sql: [{ name: 'no breakme', query: "SELECT 1 FROM pg_tables WHERE tablename = 'breakme'", expect: 'no-rows' }], timeoutSeconds: 0 } };

  it('a column an up added and its down forgot, holding the default the up wrote: exit 12 naming it, data verified intact, nothing restored (it was exit 11, "data changed")', async () => {
    const db = await freshDatabase();
    const project = await makeProject(FORGOTTEN_COLUMN, NO_BREAKME);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const [before] = await adminQuery<{ oid: string }>('postgres', 'SELECT oid::text FROM pg_database WHERE datname = $1', [db.name]);
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(12);
    const result = jsonResult<Result & { runId: string }>(run);
    expect(result.outcome).toBe('manual-action-needed');
    expect(result.message).toMatch(/^change rejected \(.*\); the downs ran and the data is verified, but the schema is not the one 0001_users left: 1 object\(s\) differ/);
    expect(result.message).toContain('differ (+ left behind, - missing, ~ changed): ~ table public.users (+ column nick)');
    expect(result.message).not.toMatch(/restored|data changed/);
    // nothing restored: the same database, every row there with the column left behind, and no restore step in the journal
    expect(await adminQuery('postgres', 'SELECT oid::text FROM pg_database WHERE datname = $1', [db.name])).toEqual([before]);
    expect(await db.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE nick = 'anon')::int AS anon FROM users")).toEqual([{ n: 20, anon: 20 }]);
    const steps = await db.query<{ step: string; outcome: string | null }>("SELECT step, outcome FROM belay.steps WHERE run_id = $1 AND step IN ('integrity', 'schema', 'restore') AND event = 'end' ORDER BY seq", [result.runId]);
    expect(steps).toEqual([{ step: 'integrity', outcome: 'ok' }, { step: 'schema', outcome: 'failed' }]);
    const history = jsonResult<Array<{ runId: string; status: string; exitCode: number }>>(await belay([...args, '--json', 'history']));
    expect(history[0]).toMatchObject({ runId: result.runId, status: 'manual-action-needed', exitCode: 12 });
  });

  it('a forgotten column beside a changed value of a column there before is still damage: restored (exit 11)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...FORGOTTEN_COLUMN, '0002_nick.up.sql': `${FORGOTTEN_COLUMN['0002_nick.up.sql']}\nUPDATE users SET name = upper(name) WHERE id = 7;` }, NO_BREAKME);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(11);
    expect(jsonResult<Result>(run).message).toContain('the content of public.users changed');
    expect(await db.query('SELECT name FROM users WHERE id = 7')).toEqual([{ name: 'user 7' }]);
  });

  it('a backup refused for a large object the role may not read says which to grant, not "every table"', async () => {
    const db = await freshDatabase();
    const project = await makeProject(ORDERS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    await db.query("SELECT lo_from_bytea(616161, 'not yours')");
    const run = await belay([...args, 'backup']);
    expect(run.code, run.stderr).toBe(4);
    expect(run.stderr).toContain('large object 616161');
    expect(run.stderr).toContain('next: Nothing was changed. pg_dump reads every large object: grant the role SELECT on large object 616161');
  });

  it('a run refused by a usage error after its journal began is a usage error in --json, its journal and history alike (it was "refused", exit 2)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...ORDERS, '0002_b.up.sql': 'CREATE TABLE b (id int);', '0002_b.down.sql': 'DROP TABLE b;' });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', 'rollback', '--to', '0001', '--restore-from', 'nosuch', '--yes']);
    expect(run.code, run.stderr).toBe(2);
    const said = JSON.parse(run.stdout) as { outcome: string; journal: string; result: { details: { runId: string } } };
    expect(said.outcome).toBe('usage-error');
    const { runId } = said.result.details;
    const lines = (await readFile(said.journal, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { type: string; status?: string; exitCode?: number });
    expect(lines.at(-1)).toMatchObject({ type: 'outcome', status: 'usage-error', exitCode: 2 });
    const history = jsonResult<Array<{ runId: string; status: string; exitCode: number }>>(await belay([...args, '--json', 'history']));
    expect(history.find((r) => r.runId === runId)).toMatchObject({ status: 'usage-error', exitCode: 2 });
  });

  it('rollback --yes still prints the data its downs drop', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...ORDERS, '0002_notes.up.sql': 'CREATE TABLE notes (id int);\nINSERT INTO notes SELECT generate_series(1, 7);', '0002_notes.down.sql': 'DROP TABLE notes;' });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/belay will revert 0002_notes on \S+, dropping public\.notes: 7 row\(s\)/);
  });

  it('a long rollback is said in one readable line: how many revisions, the data first (the most first, ten at most), the empty tables counted', async () => {
    const db = await freshDatabase();
    const files: Record<string, string> = { ...ORDERS };
    for (let n = 2; n <= 14; n++) {
      const name = `${String(n).padStart(4, '0')}_t${n}`;
      // t3 … t13 hold n rows; t2 and t14 are empty
      files[`${name}.up.sql`] = `CREATE TABLE t${n} (id int);${n > 2 && n < 14 ? `\nINSERT INTO t${n} SELECT generate_series(1, ${n});` : ''}`;
      files[`${name}.down.sql`] = `DROP TABLE t${n};`;
    }
    const args = baseArgs(await makeProject(files), db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(0);
    const said = run.stderr.split('\n').find((line) => line.startsWith('belay will '));
    const named = Array.from({ length: 10 }, (_, i) => `public.t${13 - i}: ${13 - i} row(s)`).join('; ');
    expect(said).toBe(`belay will revert 13 revisions, 0014_t14 down to 0002_t2 on ${db.name}, dropping ${named}; 1 more table(s) or column(s) holding data (\`belay plan --json\` lists every one); 2 empty table(s) or column(s).`);
  });

  it('a rollback says "data verified" only when integrity compared the data: integrity.mode off and invariants say what they did not do', async () => {
    const revisions = { ...ORDERS, '0002_notes.up.sql': 'CREATE TABLE notes (id int);', '0002_notes.down.sql': 'DROP TABLE notes;' };
    const said: Record<string, Result> = {};
    for (const mode of ['off', 'invariants', 'strict'] as const) {
      const db = await freshDatabase();
      const project = await makeProject(revisions, { integrity: { mode } });
      const args = baseArgs(project, db.url);
      expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
      const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001'], { cwd: project.dir });
      expect(run.code, run.stderr).toBe(0);
      said[mode] = jsonResult<Result>(run);
    }
    expect(said.off!.message).toMatch(/^rolled back to 0001_t; healthy, data not checked \(integrity\.mode is off\)/);
    expect(said.invariants!.message).toMatch(/^rolled back to 0001_t; healthy, data not compared \(integrity\.mode is invariants: 0 invariant\(s\) and structure hold\)/);
    expect(said.strict!.message).toMatch(/^rolled back to 0001_t; healthy, data verified/);
    for (const mode of ['off', 'invariants'] as const) expect(said[mode]!.message).not.toMatch(/data verified/);
    // and verify does not call an integrity it did not check "ok"
    const db = await freshDatabase();
    const off = await makeProject(revisions, { integrity: { mode: 'off' } });
    const verify = await belay([...baseArgs(off, db.url), '--json', 'verify'], { cwd: off.dir });
    expect(verify.code, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout).message).toBe('healthy: 0 failing check(s), integrity not checked (integrity.mode is off)');
  });

  it('a restore says "verified" only when the restored data was compared with the snapshot\'s fingerprint', async () => {
    const db = await freshDatabase();
    const off = await makeProject(ORDERS, { integrity: { mode: 'off' } });
    const args = baseArgs(off, db.url);
    expect((await belay([...args, 'migrate', 'up'], { cwd: off.dir })).code).toBe(0);
    const backup = await belay([...args, '--json', 'backup'], { cwd: off.dir });
    const id = jsonResult<{ snapshot: { id: string } }>(backup).snapshot.id;
    const unchecked = await belay([...args, '--json', '--yes', 'restore', id], { cwd: off.dir });
    expect(unchecked.code, unchecked.stderr).toBe(0);
    expect(jsonResult<Result>(unchecked).message).toMatch(new RegExp(`restored ${id} (in place|into \\S+) \\(its data not checked: integrity\\.mode is off\\)`));
    // the same snapshot restored under strict: it has no fingerprint to compare with, and says so
    const strict = await makeProject(ORDERS);
    const uncompared = await belay([...baseArgs({ ...strict, backups: off.backups }, db.url), '--json', '--yes', 'restore', id], { cwd: strict.dir });
    expect(uncompared.code, uncompared.stderr).toBe(0);
    expect(jsonResult<Result>(uncompared).message).toMatch(new RegExp(`restored ${id} (in place|into \\S+) \\(its data not compared: snapshot ${id} has no fingerprint`));
    for (const run of [unchecked, uncompared]) expect(jsonResult<Result>(run).message).not.toMatch(/verified/);
  });

  it('status lists the quarantine and restore databases left beside this one, with the command to drop each', async () => {
    const db = await freshDatabase();
    const project = await makeProject(ORDERS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const quarantine = `${db.name}_quarantine_20261201t235228282z`;
    const copy = `${db.name}_belay_restore_20261201t235227854z`;
    const unrelated = `${db.name}_quarantine_mine`;
    for (const name of [quarantine, copy, unrelated]) await adminQuery('postgres', `CREATE DATABASE ${quoteIdent(name)}`);
    try {
      const status = await belay([...args, '--json', 'status']);
      expect(jsonResult<{ leftovers: unknown[] }>(status).leftovers).toEqual([
        { name: copy, kind: 'restore-copy', drop: `DROP DATABASE "${copy}";` },
        { name: quarantine, kind: 'quarantine', drop: `DROP DATABASE "${quarantine}";` },
      ]);
      const human = await belay([...args, 'status']);
      expect(human.stdout).toContain(`LEFT      ${quarantine}: the damaged database a restore set aside; once you have checked it: DROP DATABASE "${quarantine}";`);
      expect(human.stdout).not.toContain(unrelated);
    } finally {
      for (const name of [quarantine, copy, unrelated]) await adminQuery('postgres', `DROP DATABASE ${quoteIdent(name)}`);
    }
  });

  it('history shows each run\'s database and only this database\'s runs unless --all (a shared backups folder)', async () => {
    const a = await freshDatabase();
    const b = await freshDatabase();
    const project = await makeProject(ORDERS);
    expect((await belay([...baseArgs(project, a.url), 'migrate', 'up'])).code).toBe(0);
    expect((await belay([...baseArgs(project, b.url), 'migrate', 'up'])).code).toBe(0);
    const ofA = await belay([...baseArgs(project, a.url), 'history']);
    expect(ofA.stdout).toContain(`db ${a.name}`);
    expect(ofA.stdout).not.toContain(b.name);
    const all = jsonResult<Array<{ database: string }>>(await belay([...baseArgs(project, a.url), '--json', 'history', '--all']));
    expect(all.map((run) => run.database).sort()).toEqual([a.name, b.name].sort());
  });
});
