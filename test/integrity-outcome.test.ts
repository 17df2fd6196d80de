import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

const ACCOUNTS: Record<string, string> = {
  '0001_accounts.up.sql': 'CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL, balance int NOT NULL);\nINSERT INTO accounts SELECT g, \'a\' || g, 100 FROM generate_series(1, 10) g;',
  '0001_accounts.down.sql': 'DROP TABLE accounts;',
};

interface Envelope {
  exitCode: number;
  outcome: string;
  message: string;
  next: string | null;
}

describe('what a run calls verified', () => {
  it('an integrity.tables.include that selects no table (a typo): the rolled-back run says the data was not compared, never "verified intact"', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...ACCOUNTS,
      // its down forgets the balances the up zeroed
      '0002_zero.up.sql': 'UPDATE accounts SET balance = 0;\nCREATE TABLE ledger (id int);',
      '0002_zero.down.sql': 'DROP TABLE ledger;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const config = {
      integrity: { tables: { include: ['acounts'] } },
      health: { sql: [{ name: 'no ledger', query: "SELECT 1 FROM pg_tables WHERE tablename = 'ledger'", expect: 'no-rows' }], timeoutSeconds: 0 },
    };
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(config));

    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    const envelope = JSON.parse(run.stdout) as Envelope & { result: { runId: string } };
    expect(run.code, run.stdout + run.stderr).toBe(10);
    expect(envelope.message).toMatch(/^change rejected \(health failed after the change: no ledger: 1 row\(s\): .*\); rolled back to 0001_accounts, data not compared: integrity\.tables \(include \["acounts"\], exclude \[\]\) selects none of the 1 table\(s\) there are: public\.accounts$/);
    expect(envelope.message).not.toContain('verified');
    expect(envelope.next).toMatch(/belay history/);
    // what the comparison would have caught is there: the balances stay zeroed
    expect(await db.query('SELECT count(*)::int AS n FROM accounts WHERE balance = 0')).toEqual([{ n: 10 }]);
    expect(await db.query("SELECT name FROM belay.migrations ORDER BY name")).toEqual([{ name: '0001_accounts' }]);
    const history = jsonResult(await belay([...args, '--json', 'history', envelope.result.runId], { cwd: project.dir })) as { steps: Array<{ step: string; outcome: string; detail: Record<string, unknown> }> };
    expect(history.steps.filter((s) => s.step === 'integrity').at(-1)?.detail).toMatchObject({ intact: true, noTableSelected: expect.stringContaining('public.accounts') });
  }, 60_000);

  it('an invariant a revision breaks sends the run back (exit 10), one broken before refuses it (exit 4) unless --allow-unhealthy, and verify names it (a broken invariant was "healthy", exit 0)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...ACCOUNTS,
      '0002_neg.up.sql': "INSERT INTO accounts VALUES (9999, 'neg', -5);",
      '0002_neg.down.sql': 'DELETE FROM accounts WHERE id = 9999;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const config = { integrity: { mode: 'invariants', invariants: [{ name: 'no negative', query: 'SELECT id FROM accounts WHERE balance < 0' }] } };
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(config));

    const run = await belay([...args, '--json', 'migrate', 'up'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(10);
    expect((JSON.parse(run.stdout) as Envelope).message).toMatch(/^change rejected \(health failed after the change: invariant no negative: 1 row\(s\): \[\{"id":9999\}\]\); rolled back to 0001_accounts/);
    expect(await db.query('SELECT count(*)::int AS n FROM accounts WHERE balance < 0')).toEqual([{ n: 0 }]);

    await db.query("INSERT INTO accounts VALUES (-1, 'before', -1)");
    const verify = JSON.parse((await belay([...args, '--json', 'verify'], { cwd: project.dir })).stdout) as Envelope;
    expect(verify.message).toBe('UNHEALTHY: integrity FAIL: invariant no negative');
    expect(verify.next).toMatch(/Fix what fails/);
    const refused = await belay([...args, '--json', 'migrate', 'up'], { cwd: project.dir });
    expect(refused.code, refused.stdout).toBe(4);
    expect((JSON.parse(refused.stdout) as Envelope).message).toMatch(/unhealthy before any change: invariant no negative/);
    // broken before the change, the operator let it start: held against nothing, said so
    const allowed = await belay([...args, '--json', 'migrate', 'up', '--allow-unhealthy'], { cwd: project.dir });
    expect(allowed.code, allowed.stdout).toBe(0);
    expect((JSON.parse(allowed.stdout) as Envelope).message).toMatch(/not healthy: invariant no negative still fails \(failing before the change too, allowed by --allow-unhealthy\)/);
  }, 60_000);
});

describe('large objects and sequences', () => {
  const OBJECTS: Record<string, string> = {
    '0001_objects.up.sql': [
      'CREATE TABLE lobs (id int PRIMARY KEY, lo oid);',
      "INSERT INTO lobs VALUES (1, lo_from_bytea(0, 'hello large object')), (2, lo_from_bytea(0, decode(repeat('00ff', 5000), 'hex')));",
      "SELECT lo_from_bytea(424242, 'explicit oid lo');",
      'CREATE SEQUENCE weird_seq INCREMENT BY -7 MINVALUE -1000000 MAXVALUE 100 START 50;',
      "SELECT nextval('weird_seq') FROM generate_series(1, 5);",
    ].join('\n'),
    '0001_objects.down.sql': 'DROP SEQUENCE weird_seq;\nSELECT lo_unlink(lo) FROM lobs;\nSELECT lo_unlink(424242);\nDROP TABLE lobs;',
  };
  const HEALTH = { health: { sql: [{ name: 'no breakme', query: "SELECT 1 FROM pg_tables WHERE tablename = 'breakme'", expect: 'no-rows' }], timeoutSeconds: 0 } };
  const objects = async (db: Awaited<ReturnType<typeof freshDatabase>>) => ({
    oids: (await db.query<{ oid: string }>('SELECT oid::text FROM pg_largeobject_metadata ORDER BY oid')).map((r) => r.oid),
    explicit: (await db.query<{ v: string }>("SELECT convert_from(lo_get(424242), 'UTF8') AS v"))[0]!.v,
    sequence: (await db.query('SELECT last_value::int AS last_value, is_called FROM weird_seq'))[0],
  });

  it('a revision whose down does not undo lo_unlink, lo_put and a setval sends the run to the snapshot (exit 11), and they are back; it was exit 10, "data verified intact"', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...OBJECTS,
      '0002_break.up.sql': "SELECT lo_unlink(lo) FROM lobs WHERE id = 1;\nSELECT lo_put(424242, 0, 'XXXXXXXX');\nSELECT setval('weird_seq', 99);\nCREATE TABLE breakme (id int);",
      '0002_break.down.sql': 'DROP TABLE breakme;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(HEALTH));
    const before = await objects(db);
    expect(before.oids).toHaveLength(3);
    expect(before.sequence).toEqual({ last_value: 22, is_called: true });

    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full'], { cwd: project.dir });
    const envelope = JSON.parse(run.stdout) as Envelope & { result: { runId: string } };
    expect(run.code, run.stdout + run.stderr).toBe(11);
    expect(envelope.message).toContain('the large objects changed: 3 before, 2 now');
    expect(envelope.message).toContain('sequence public.weird_seq was set back: its last value was 22, now 99');
    expect(envelope.next).not.toBeNull();
    expect(await objects(db)).toEqual(before);
    expect(await db.query("SELECT name FROM belay.migrations ORDER BY name")).toEqual([{ name: '0001_objects' }]);
  }, 120_000);

  it('a large object rewritten in place (lo_put) alone is found too, and put back', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...OBJECTS,
      '0002_put.up.sql': "SELECT lo_put(424242, 0, 'XXXXXXXX');\nCREATE TABLE breakme (id int);",
      '0002_put.down.sql': 'DROP TABLE breakme;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(HEALTH));
    const before = await objects(db);
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(11);
    expect((JSON.parse(run.stdout) as Envelope).message).toContain('the content of large objects changed (3, the same ones)');
    expect(await objects(db)).toEqual(before);
  }, 120_000);

  it('large objects the role may not read are not compared, and the rolled-back run says so, never "data verified intact"', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...OBJECTS,
      '0002_break.up.sql': 'CREATE TABLE breakme (id int);',
      '0002_break.down.sql': 'DROP TABLE breakme;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    // the superuser's own, not granted: the role may not read it
    await db.query("SELECT lo_from_bytea(515151, 'not yours')");
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(HEALTH));

    const run = await belay([...args, '--json', 'migrate', 'up'], { cwd: project.dir });
    const envelope = JSON.parse(run.stdout) as Envelope;
    expect(run.code, run.stdout + run.stderr).toBe(10);
    expect(envelope.message).toMatch(/rolled back to 0001_objects, tables verified intact, large objects not compared: the role may not read 1 of the 4$/);
    expect(envelope.message).not.toContain('data verified intact');
  }, 120_000);
});

describe('large objects and sequences beside a touched snapshot', () => {
  const OBJECTS: Record<string, string> = {
    '0001_objects.up.sql': [
      'CREATE SCHEMA s1;',
      'CREATE TABLE lobs (id int PRIMARY KEY, lo oid);',
      "INSERT INTO lobs VALUES (1, lo_from_bytea(0, 'first')), (2, lo_from_bytea(0, 'second'));",
      'CREATE SEQUENCE s1.weird_seq;',
      "SELECT nextval('s1.weird_seq') FROM generate_series(1, 5);",
    ].join('\n'),
    '0001_objects.down.sql': 'SELECT lo_unlink(lo) FROM lobs;\nDROP TABLE lobs;\nDROP SCHEMA s1 CASCADE;',
    // the tester's revision: its down undoes neither the lo_unlink nor the setval, and the health check fails
    '0002_break.up.sql': "SELECT lo_unlink(lo) FROM lobs WHERE id = 1;\nSELECT setval('s1.weird_seq', 99);\nCREATE TABLE breakme (id int);",
    '0002_break.down.sql': 'DROP TABLE breakme;',
  };
  const HEALTH = { health: { sql: [{ name: 'no breakme', query: "SELECT 1 FROM pg_tables WHERE tablename = 'breakme'", expect: 'no-rows' }], timeoutSeconds: 0 } };
  const objects = async (db: Awaited<ReturnType<typeof freshDatabase>>) => ({
    oids: (await db.query<{ oid: string }>('SELECT oid::text FROM pg_largeobject_metadata ORDER BY oid')).map((r) => r.oid),
    sequence: (await db.query('SELECT last_value::int AS last_value FROM s1.weird_seq'))[0],
  });
  const prepared = async () => {
    const db = await freshDatabase();
    const project = await makeProject(OBJECTS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(HEALTH));
    const before = await objects(db);
    expect(before).toEqual({ oids: expect.arrayContaining([]) as unknown, sequence: { last_value: 5 } });
    expect(before.oids).toHaveLength(2);
    return { db, project, args, before };
  };

  it('auto takes a full snapshot when the database has large objects: the run ends 11 with them and the sequence back; it took a touched one and ended 10, "data verified intact"', async () => {
    const { db, project, args, before } = await prepared();
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    const envelope = JSON.parse(run.stdout) as Envelope;
    expect(run.code, run.stdout + run.stderr).toBe(11);
    expect(run.stderr).toContain('preflight: full snapshot: the database has 2 large objects, which a touched snapshot does not hold (it restores tables and sequences only)');
    expect(envelope.message).not.toContain('verified intact');
    expect(await objects(db)).toEqual(before);
    expect(await db.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_objects' }]);
  }, 120_000);

  it('--backup-scope touched: the touched fingerprint holds them too, and a difference it cannot put back ends 12 naming a full snapshot, never "data verified intact"', async () => {
    const { db, project, args, before } = await prepared();
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'touched'], { cwd: project.dir });
    const envelope = JSON.parse(run.stdout) as Envelope;
    expect(run.code, run.stdout + run.stderr).toBe(12);
    expect(envelope.message).not.toContain('verified intact');
    expect(envelope.message).toContain('the large objects changed: 2 before, 1 now');
    expect(envelope.message).toContain('restored s1.weird_seq from touched snapshot');
    expect(envelope.message).toContain('but it holds tables and sequences only, and what lies outside them is not back: the large objects changed: 2 before, 1 now');
    expect(envelope.next).toMatch(/full snapshot/);
    // the sequence was in the learned scope (setval locks it) and is back; the unlinked large object is not
    expect(await objects(db)).toEqual({ oids: before.oids.slice(1), sequence: { last_value: 5 } });
  }, 120_000);

  it('a sequence no column owns set back, on a database without large objects: the touched snapshot holds it and compares it, the run ends 11 with it back (it ended 10, "data verified intact")', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_seq.up.sql': "CREATE SCHEMA s1;\nCREATE SEQUENCE s1.weird_seq;\nSELECT nextval('s1.weird_seq') FROM generate_series(1, 5);",
      '0001_seq.down.sql': 'DROP SCHEMA s1 CASCADE;',
      '0002_break.up.sql': "SELECT setval('s1.weird_seq', 2);\nCREATE TABLE breakme (id int);",
      '0002_break.down.sql': 'DROP TABLE breakme;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(HEALTH));
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    const envelope = JSON.parse(run.stdout) as Envelope;
    expect(run.code, run.stdout + run.stderr).toBe(11);
    expect(run.stderr).toContain('preflight: touched snapshot');
    expect(envelope.message).toContain('sequence s1.weird_seq was set back: its last value was 5, now 2');
    expect(envelope.message).toContain('restored s1.weird_seq from touched snapshot');
    expect(await db.query('SELECT last_value::int AS last_value FROM s1.weird_seq')).toEqual([{ last_value: 5 }]);
  }, 120_000);

  it('an up that makes a large object and leaves it, on a database that had none: learning sees it on the copy, so auto takes a full snapshot and the run ends 11 without it (it ended 10)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...ACCOUNTS,
      '0002_lob.up.sql': "SELECT lo_from_bytea(0, 'left behind');\nCREATE TABLE breakme (id int);",
      '0002_lob.down.sql': 'DROP TABLE breakme;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(HEALTH));
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(11);
    expect(run.stderr).toContain('preflight: full snapshot: the revisions change the large objects on the copy (0 before, 1 after): a touched snapshot holds none');
    expect((JSON.parse(run.stdout) as Envelope).message).toContain('the large objects changed: 0 before, 1 now');
    expect(await db.query('SELECT oid FROM pg_largeobject_metadata')).toEqual([]);
  }, 120_000);

  it('an up that leaves a large object it made only where there are rows (not on the copy): the touched snapshot cannot take it away, the run ends 12, never "data verified intact" (it ended 10)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...ACCOUNTS,
      '0002_lob.up.sql': "SELECT lo_from_bytea(0, 'left behind') FROM accounts WHERE id = 1;\nUPDATE accounts SET balance = balance + 1;\nCREATE TABLE breakme (id int);",
      '0002_lob.down.sql': 'UPDATE accounts SET balance = balance - 1;\nDROP TABLE breakme;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(HEALTH));
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    const envelope = JSON.parse(run.stdout) as Envelope;
    expect(run.code, run.stdout + run.stderr).toBe(12);
    expect(run.stderr).toContain('preflight: touched snapshot');
    expect(envelope.message).toContain('what lies outside them is not back: the large objects changed: 0 before, 1 now');
    expect(envelope.message).not.toContain('verified intact');
    expect(envelope.next).toMatch(/full snapshot/);
  }, 120_000);
});

describe('a column a down turns back into its type with USING', () => {
  const rolledBack = async (column: string, up: string, down: string): Promise<{ db: Awaited<ReturnType<typeof freshDatabase>>; code: number | null; envelope: Envelope }> => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_t.up.sql': `CREATE TABLE t (id int PRIMARY KEY, ${column}, n int NOT NULL);\nINSERT INTO t SELECT g, ${column.startsWith('flag') ? 'g % 2' : '1700000000 + g * 3600'}, g FROM generate_series(1, 100) g;`,
      '0001_t.down.sql': 'DROP TABLE t;',
      '0002_type.up.sql': up,
      '0002_type.down.sql': down,
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
    const run = await belay([...args, '--json', 'rollback', '--to', '0001', '--yes'], { cwd: project.dir });
    return { db, code: run.code, envelope: JSON.parse(run.stdout) as Envelope };
  };
  const quarantined = async (db: { name: string; query: (sql: string, params?: unknown[]) => Promise<unknown[]> }): Promise<unknown[]> =>
    db.query('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${db.name}_quarantine`]);

  it('smallint to boolean and back (no cast between them): read back through its text, "1" and "0", the data verified (it ended 11 and restored the snapshot)', async () => {
    const { db, code, envelope } = await rolledBack(
      'flag smallint NOT NULL DEFAULT 0',
      'ALTER TABLE t ALTER COLUMN flag DROP DEFAULT, ALTER COLUMN flag TYPE boolean USING flag <> 0, ALTER COLUMN flag SET DEFAULT false;',
      'ALTER TABLE t ALTER COLUMN flag DROP DEFAULT, ALTER COLUMN flag TYPE smallint USING CASE WHEN flag THEN 1 ELSE 0 END, ALTER COLUMN flag SET DEFAULT 0;',
    );
    expect(code, envelope.message).toBe(0);
    expect(envelope.message).toMatch(/^rolled back to 0001_t; healthy, data verified; /);
    expect(await db.query("SELECT format_type(atttypid, NULL) AS type FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'flag'")).toEqual([{ type: 'smallint' }]);
    expect(await db.query('SELECT flag, count(*)::int AS n FROM t GROUP BY flag ORDER BY flag')).toEqual([{ flag: 0, n: 50 }, { flag: 1, n: 50 }]);
    expect(await quarantined(db)).toEqual([]);
  });

  it('epoch seconds to timestamptz and back (its values do not cast back): not compared, named with both types, the rest verified and nothing restored (it ended 11)', async () => {
    const { db, code, envelope } = await rolledBack(
      'at integer NOT NULL',
      'ALTER TABLE t ALTER COLUMN at TYPE timestamptz USING to_timestamp(at);',
      'ALTER TABLE t ALTER COLUMN at TYPE integer USING extract(epoch FROM at)::int;',
    );
    expect(code, envelope.message).toBe(0);
    expect(envelope.outcome).toBe('ok');
    expect(envelope.message).toBe(
      'rolled back to 0001_t; healthy, tables verified intact but for public.t.at, not compared: its type changed from timestamp with time zone to integer and its values do not cast back; schema as recorded at 0001_t',
    );
    expect(await db.query('SELECT min(at) AS first, count(*)::int AS n FROM t')).toEqual([{ first: 1700003600, n: 100 }]);
    expect(await quarantined(db)).toEqual([]);
  });

  it('a down that turns the type back and changes another column is still caught: exit 11, the snapshot back', async () => {
    const { db, code, envelope } = await rolledBack(
      'flag smallint NOT NULL',
      'ALTER TABLE t ALTER COLUMN flag TYPE boolean USING flag <> 0;',
      'ALTER TABLE t ALTER COLUMN flag TYPE smallint USING CASE WHEN flag THEN 1 ELSE 0 END;\nUPDATE t SET n = n + 1 WHERE id = 5;',
    );
    expect(code, envelope.message).toBe(11);
    expect(envelope.message).toMatch(/data changed after the rollback: the content of public\.t changed \(100 rows, same count, different hash\); restored /);
    expect(await db.query('SELECT flag, n FROM t WHERE id = 5')).toEqual([{ flag: true, n: 5 }]);
    expect(await quarantined(db)).toHaveLength(1);
  });
});
